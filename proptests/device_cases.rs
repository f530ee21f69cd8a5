//! The device layer, one named case each: welcome and join, pending envelopes released by the
//! operations they need, duplicates, refusals that change nothing, one rotation for every
//! group, time, sync, reopening from the store exactly as it was, and sender-key mode.

use crate::support;

use splitsafe::crypto::{ChainError, OpenError};
use splitsafe::device::{
    Device, DeviceConfig, DeviceError, Event, Invited, MemoryStore, Message, MessageMode, Refusal,
    SqliteStore, Store, Welcome,
};
use splitsafe::group::{Change, GroupId, Standing};
use support::crypto::{rng, Rng};
use support::group::{identity, T0};
use support::process::TempDir;

fn device<S: Store>(store: S, i: u8, r: &mut Rng) -> Device<S> {
    Device::create(store, identity(i), DeviceConfig::default(), r, T0).unwrap()
}

/// Everything observable about a device's state, to compare a live device with a reopened
/// one.
fn state<S: Store>(d: &Device<S>) -> Vec<Vec<u8>> {
    let mut out = vec![d.keyring().export().to_vec()];
    for group in d.groups() {
        out.push(d.replica(group).unwrap().save());
    }
    out.extend(d.pending().map(|(id, _)| id.0.to_vec()));
    out.extend(
        d.unacknowledged()
            .map(|delivery| format!("{delivery:?}").into_bytes()),
    );
    out
}

fn messages(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.plaintext.clone()),
            _ => None,
        })
        .collect()
}

/// Alice founds a group and invites Bob; Bob joins from the armored welcome.
fn pair<S: Store>(a: S, b: S, r: &mut Rng) -> (Device<S>, Device<S>, GroupId) {
    let mut alice = device(a, 0, r);
    let mut bob = device(b, 1, r);
    let group = alice.create_group(r, T0 + 1).unwrap();
    let invitation = alice.invite(group, bob.bundle(), T0 + 2).unwrap();
    let events = bob
        .receive(invitation.welcome.armored().as_bytes(), T0 + 3)
        .unwrap();
    let mut members = vec![alice.id(), bob.id()];
    members.sort();
    let invited = Invited {
        group,
        from: alice.id(),
        founder: alice.id(),
        members,
    };
    assert_eq!(events, vec![Event::Invited(invited.clone())]);
    assert_eq!(
        bob.groups().count(),
        0,
        "nothing joined before the user accepts"
    );
    // The invitation outlives a restart.
    let mut bob = Device::open(bob.into_store(), DeviceConfig::default()).unwrap();
    assert_eq!(bob.invitations().collect::<Vec<_>>(), vec![&invited]);
    let events = bob.accept(group, T0 + 4).unwrap();
    assert_eq!(events.first(), Some(&Event::Joined(group)));
    assert_eq!(bob.invitations().count(), 0);
    (alice, bob, group)
}

#[test]
fn a_welcome_joins_and_messages_flow_both_ways() {
    let mut r = rng(1);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    assert_eq!(bob.view(group), alice.view(group));
    let to_bob = alice.send(group, b"hi bob", &mut r, T0 + 10).unwrap();
    let to_alice = bob.send(group, b"hi alice", &mut r, T0 + 11).unwrap();
    let at_bob = bob.receive(to_bob.armored().as_bytes(), T0 + 12).unwrap();
    let at_alice = alice.receive(&to_alice.to_bytes(), T0 + 12).unwrap();
    assert_eq!(messages(&at_bob), vec![b"hi bob".to_vec()]);
    assert_eq!(messages(&at_alice), vec![b"hi alice".to_vec()]);
    let Event::Message(m) = &at_bob[0] else {
        panic!("a message")
    };
    assert_eq!((m.sender, m.standing), (alice.id(), Standing::Member));
    // A replay is refused, and so is the sender's own envelope coming back.
    assert_eq!(
        bob.receive(&to_bob.to_bytes(), T0 + 13).unwrap(),
        vec![Event::Duplicate(m.id)]
    );
    assert!(matches!(
        &alice.receive(&to_bob.to_bytes(), T0 + 13).unwrap()[..],
        [Event::Duplicate(_)]
    ));
}

#[test]
fn a_welcome_that_does_not_hold_the_receiver_is_refused() {
    let mut r = rng(2);
    let (alice, _bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let mut carol = device(MemoryStore::default(), 2, &mut r);
    let welcome = alice.welcome(group).unwrap();
    assert_eq!(
        carol.receive(&welcome.to_bytes(), T0 + 5).unwrap(),
        vec![Event::Refused(Refusal::NotInvited(group))]
    );
    assert_eq!(carol.groups().count(), 0);
}

/// An envelope that arrives before the operations it needs waits, and opens when they come.
#[test]
fn pending_envelopes_open_when_their_operations_arrive() {
    let mut r = rng(3);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let mut carol = device(MemoryStore::default(), 2, &mut r);
    let invitation = alice.invite(group, carol.bundle(), T0 + 10).unwrap();
    support::device::join(&mut carol, &invitation.welcome, T0 + 11);
    // Carol rotates; her message reaches Bob before her rotation does.
    let rotation = carol.rotate(&mut r, T0 + 20).unwrap();
    let sealed = carol.send(group, b"new key", &mut r, T0 + 21).unwrap();
    let events = bob.receive(&sealed.to_bytes(), T0 + 22).unwrap();
    assert!(
        matches!(
            &events[..],
            [Event::Pending {
                reason: OpenError::Position(_),
                ..
            }]
        ),
        "{events:?}"
    );
    assert_eq!(bob.pending().count(), 1);
    // Bob has not even seen Carol's add: the add, then the rotation, release it.
    bob.receive(&invitation.add.to_bytes(), T0 + 23).unwrap();
    let events = bob.receive(&rotation[0].to_bytes(), T0 + 24).unwrap();
    assert_eq!(messages(&events), vec![b"new key".to_vec()]);
    assert_eq!(bob.pending().count(), 0);
}

/// Text without an armored block is reported as such (not decoded as CBOR), and every kind
/// of message a device sends is bytes no UTF-8 text is, so the two never meet.
#[test]
fn text_without_a_block_says_so() {
    let mut r = rng(6);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let error = bob
        .receive(b"hello world, no armor here", T0 + 5)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unreadable input: invalid value: text without any -----BEGIN SPLITSAFE <KIND>----- \
         block (a mail body must be MIME-decoded before it is received)"
    );
    let sealed = alice.send(group, b"x", &mut r, T0 + 6).unwrap();
    let sync = alice.sync_message(group, bob.id()).unwrap().unwrap();
    let invitation = alice.invite(
        group,
        device(MemoryStore::default(), 2, &mut r).bundle(),
        T0 + 7,
    );
    let invitation = invitation.unwrap();
    for message in [
        sealed.message,
        sync,
        invitation.add.message,
        invitation.welcome.message,
        Message::Bundle(bob.bundle()),
    ] {
        assert!(
            std::str::from_utf8(&message.to_bytes()).is_err(),
            "{message:?}"
        );
    }
}

#[test]
fn bad_input_changes_nothing() {
    let mut r = rng(4);
    let (mut alice, _bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let before = state(&alice);
    assert!(matches!(
        alice.receive(b"\xffnot a message", T0 + 5),
        Err(DeviceError::Unreadable(_))
    ));
    let sealed = alice.send(group, b"x", &mut r, T0 + 6).unwrap();
    let before_damage = state(&alice);
    let armored = sealed.armored();
    let checksum_line = armored.lines().find(|l| l.starts_with('=')).unwrap();
    let damaged = armored.replace(checksum_line, "=AAAAAAAA");
    let events = alice.receive(damaged.as_bytes(), T0 + 7).unwrap();
    assert!(matches!(&events[..], [Event::Refused(Refusal::Armor(_))]));
    assert_eq!(state(&alice), before_damage);
    assert_ne!(before, before_damage, "sending changed the clock");
}

/// B6: one rotation publishes the new key in every group, so after the old key is erased
/// every group still reaches the member.
#[test]
fn one_rotation_reaches_every_group() {
    let mut r = rng(5);
    let (mut alice, mut bob, first) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let second = alice.create_group(&mut r, T0 + 10).unwrap();
    let invitation = alice.invite(second, bob.bundle(), T0 + 11).unwrap();
    support::device::join(&mut bob, &invitation.welcome, T0 + 12);
    let published = bob.rotate(&mut r, T0 + 20).unwrap();
    assert_eq!(published.len(), 2, "one rotation per group");
    for message in &published {
        alice.receive(&message.to_bytes(), T0 + 21).unwrap();
    }
    let later = T0 + 20 + DeviceConfig::default().keyring.grace_ms;
    let tick = bob.tick(later).unwrap();
    assert_eq!(
        bob.keyring().own_key_ids().len(),
        1,
        "the old key is erased"
    );
    assert_eq!(tick.next, None);
    for group in [first, second] {
        let sealed = alice
            .send(group, b"still there", &mut r, later + 1)
            .unwrap();
        let events = bob.receive(&sealed.to_bytes(), later + 2).unwrap();
        assert_eq!(
            messages(&events),
            vec![b"still there".to_vec()],
            "{events:?}"
        );
    }
}

/// `tick` logs a held operation when it falls due and says when that is.
#[test]
fn tick_releases_what_time_holds() {
    let mut r = rng(6);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let drift = DeviceConfig::default().replica.clock.max_drift_ms;
    // Alice's clock runs an hour ahead: her remove of Bob... of a member she adds first.
    let carol = device(MemoryStore::default(), 2, &mut r);
    let ahead = T0 + 3_600_000;
    let add = alice.invite(group, carol.bundle(), ahead).unwrap().add;
    let events = bob.receive(&add.to_bytes(), T0 + 10).unwrap();
    assert!(events.is_empty(), "held: {events:?}");
    assert_eq!(bob.next_deadline_after(T0 + 10), Some(ahead - drift));
    let tick = bob.tick(ahead - drift).unwrap();
    assert_eq!(
        tick.events,
        vec![Event::Changed {
            group,
            change: Change::Added(carol.id())
        }]
    );
    assert_eq!(tick.next, None);
}

/// Sync over a transport that loses every third message: the two converge, and then have
/// nothing to say.
#[test]
fn sync_converges_over_a_lossy_transport_and_then_falls_silent() {
    let mut r = rng(7);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    // Each side changes the group without the other hearing of it.
    for i in 2..5 {
        let newcomer = device(MemoryStore::default(), i, &mut r);
        alice
            .invite(group, newcomer.bundle(), T0 + 10 + u64::from(i))
            .unwrap();
    }
    bob.rotate(&mut r, T0 + 20).unwrap();
    let mut sent = 0;
    let every_third_lost = || {
        sent += 1;
        usize::from(sent % 3 != 0)
    };
    let rounds = sync_lossy(&mut alice, &mut bob, group, every_third_lost);
    assert!(rounds.is_some_and(|rounds| rounds < 10), "no convergence");
    assert_eq!(alice.view(group), bob.view(group));
    assert_eq!(
        alice.replica(group).unwrap().summary(),
        bob.replica(group).unwrap().summary()
    );
}

proptest::proptest! {
    #![proptest_config(support::config_with_cases(24))]

    /// Over a transport that loses each message with probability `loss` percent, and
    /// delivers some twice, two devices that each changed the group without the other
    /// (having synced before, or meeting for the first time) converge and then fall silent.
    #[test]
    fn sync_converges_over_random_loss_and_then_falls_silent(
        seed: u64,
        loss in 0u32..50,
        invites in 0u8..4,
        rotations in 0u8..3,
        met: bool,
    ) {
        use rand_core::Rng as _;
        let mut r = rng(seed);
        let (mut alice, mut bob, group) =
            pair(MemoryStore::default(), MemoryStore::default(), &mut r);
        if met {
            sync_pair(&mut alice, &mut bob, group, T0 + 4);
        }
        for i in 0..invites {
            let newcomer = device(MemoryStore::default(), 2 + i, &mut r);
            alice
                .invite(group, newcomer.bundle(), T0 + 10 + u64::from(i))
                .unwrap();
        }
        for i in 0..rotations {
            bob.rotate(&mut r, T0 + 20 + u64::from(i)).unwrap();
        }
        let mut net = rng(seed ^ 0x5eed);
        let lose_or_duplicate = || match net.next_u32() % 100 {
            n if n < loss => 0,
            n if n >= 90 => 2,
            _ => 1,
        };
        let rounds = sync_lossy(&mut alice, &mut bob, group, lose_or_duplicate);
        proptest::prop_assert!(rounds.is_some_and(|rounds| rounds < 400), "no convergence");
        proptest::prop_assert_eq!(alice.view(group), bob.view(group));
        proptest::prop_assert_eq!(
            alice.replica(group).unwrap().summary(),
            bob.replica(group).unwrap().summary()
        );
    }
}

/// Syncs `a` and `b` until both fall silent, both speaking each round, each message
/// delivered (as armored text) as many times as `copies` says (0: lost): the rounds it
/// took, or `None` if they still spoke after 1,000.
fn sync_lossy<S: Store>(
    a: &mut Device<S>,
    b: &mut Device<S>,
    group: GroupId,
    mut copies: impl FnMut() -> usize,
) -> Option<usize> {
    for round in 0..1_000 {
        let from_a = a.sync_message(group, b.id()).unwrap();
        let from_b = b.sync_message(group, a.id()).unwrap();
        if from_a.is_none() && from_b.is_none() {
            return Some(round);
        }
        for (message, to) in [(from_a, &mut *b), (from_b, &mut *a)] {
            let Some(message) = message else { continue };
            for _ in 0..copies() {
                to.receive(message.armored().as_bytes(), T0 + 30).unwrap();
            }
        }
    }
    None
}

/// A forged sync message (not signed by its claimed sender) changes nothing.
#[test]
fn a_forged_sync_message_is_refused() {
    let mut r = rng(8);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let Some(Message::Sync(mut sync)) = alice.sync_message(group, bob.id()).unwrap() else {
        panic!("alice has not heard from bob")
    };
    sync.from = identity(9).id();
    let before = state(&bob);
    assert_eq!(
        bob.receive(&Message::Sync(sync.clone()).to_bytes(), T0 + 5)
            .unwrap(),
        vec![Event::Refused(Refusal::BadSync {
            group,
            from: identity(9).id()
        })]
    );
    assert_eq!(state(&bob), before);
}

/// Reopening from the store gives the same device: keys, replicas (views, clocks, held and
/// quarantined operations), pending envelopes, seen envelopes and sync peers; in memory and
/// in SQLite.
#[test]
fn reopening_restores_exactly() {
    fn scenario<S: Store + Clone>(a: S, b: S, reopen: impl Fn(&S) -> S) {
        let mut r = rng(9);
        let (mut alice, mut bob, group) = pair(a, b, &mut r);
        let carol = device(MemoryStore::default(), 2, &mut r);
        let add = alice
            .invite(group, carol.bundle(), T0 + 3_600_000)
            .unwrap()
            .add;
        bob.receive(&add.to_bytes(), T0 + 10).unwrap(); // held
        let sealed = alice.send(group, b"early", &mut r, T0 + 3_600_001).unwrap();
        bob.receive(&sealed.to_bytes(), T0 + 11).unwrap(); // pending: stamped ahead
        let seen = alice.send(group, b"seen", &mut r, T0 + 20).unwrap();
        bob.receive(&seen.to_bytes(), T0 + 21).unwrap();
        if let Some(sync) = alice.sync_message(group, bob.id()).unwrap() {
            bob.receive(&sync.to_bytes(), T0 + 22).unwrap();
        }
        bob.rotate(&mut r, T0 + 23).unwrap();
        let reopened = Device::open(reopen(bob.store()), DeviceConfig::default()).unwrap();
        assert_eq!(state(&reopened), state(&bob));
        let mut reopened = reopened;
        assert!(matches!(
            &reopened.receive(&seen.to_bytes(), T0 + 25).unwrap()[..],
            [Event::Duplicate(_)]
        ));
        assert_eq!(
            reopened.sync_message(group, alice.id()).unwrap(),
            bob.sync_message(group, alice.id()).unwrap()
        );
        // Time releases the same things on both.
        let later = T0 + 3_600_000;
        assert_eq!(reopened.tick(later).unwrap(), bob.tick(later).unwrap());
    }
    scenario(MemoryStore::default(), MemoryStore::default(), Clone::clone);
    let dir = TempDir::new("reopen");
    let path = |name: &str| dir.0.join(name);
    scenario(
        SqliteFile::new(path("a.db")),
        SqliteFile::new(path("b.db")),
        Clone::clone,
    );
}

/// A SQLite store by path. Cloning copies its files (the main file and the log, as a disk
/// image would hold them) to a new path and opens the copy: a store is open in one place at
/// a time.
struct SqliteFile(std::path::PathBuf, SqliteStore);

impl SqliteFile {
    fn new(path: std::path::PathBuf) -> Self {
        let store = SqliteStore::open(&path).unwrap();
        Self(path, store)
    }
}

impl Clone for SqliteFile {
    fn clone(&self) -> Self {
        static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let copy = self.0.with_extension(format!("copy{n}"));
        for suffix in ["", "-wal"] {
            let from = format!("{}{suffix}", self.0.display());
            if std::path::Path::new(&from).exists() {
                std::fs::copy(&from, format!("{}{suffix}", copy.display())).unwrap();
            }
        }
        Self::new(copy)
    }
}

impl Store for SqliteFile {
    fn load(&mut self) -> Result<Option<splitsafe::device::Stored>, splitsafe::device::StoreError> {
        self.1.load()
    }
    fn commit(
        &mut self,
        writes: &[splitsafe::device::Write],
        durability: splitsafe::device::Durability,
    ) -> Result<(), splitsafe::device::StoreError> {
        self.1.commit(writes, durability)
    }
}

/// Sender-key mode: the group's setting survives a restart; the first message hands out the
/// chain, the next is a bare chain message of constant size; a removed member is cut off.
#[test]
fn sender_keys_hand_out_a_chain_and_cut_off_removed_members() {
    let mut r = rng(20);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    let mut carol = device(MemoryStore::default(), 2, &mut r);
    let invitation = alice.invite(group, carol.bundle(), T0 + 4).unwrap();
    bob.receive(&invitation.add.to_bytes(), T0 + 5).unwrap();
    support::device::join(&mut carol, &invitation.welcome, T0 + 5);
    assert_eq!(alice.mode(group), Some(MessageMode::default()));
    alice.set_mode(group, MessageMode::SenderKeys).unwrap();
    let mut alice = Device::open(alice.into_store(), DeviceConfig::default()).unwrap();
    assert_eq!(alice.mode(group), Some(MessageMode::SenderKeys));

    let first = alice.send(group, b"one", &mut r, T0 + 10).unwrap();
    let second = alice.send(group, b"two", &mut r, T0 + 11).unwrap();
    let (Message::Chain(first_post), Message::Chain(second_post)) =
        (&first.message, &second.message)
    else {
        panic!("sender-key messages")
    };
    assert!(first_post.handoff.is_some() && second_post.handoff.is_none());
    assert_eq!(first_post.message.len(), second_post.message.len());
    // Bob gets the second first: it waits for its chain, then opens after the first.
    let waiting = bob.receive(&second.to_bytes(), T0 + 12).unwrap();
    assert!(matches!(
        &waiting[..],
        [Event::Pending {
            reason: OpenError::Chain(ChainError::UnknownChain),
            ..
        }]
    ));
    let events = bob.receive(first.armored().as_bytes(), T0 + 13).unwrap();
    assert!(events.contains(&Event::Chain {
        group,
        sender: alice.id(),
        new: true
    }));
    // The waiting one opens as soon as the chain is installed, before the first's message.
    assert_eq!(messages(&events), vec![b"two".to_vec(), b"one".to_vec()]);
    assert_eq!(bob.pending().count(), 0);
    let events = carol.receive(&first.to_bytes(), T0 + 13).unwrap();
    assert_eq!(messages(&events), vec![b"one".to_vec()]);

    // Carol is removed: Alice's next message starts a chain Carol cannot read.
    let removal = alice.remove(group, carol.id(), T0 + 20).unwrap();
    bob.receive(&removal.to_bytes(), T0 + 21).unwrap();
    carol.receive(&removal.to_bytes(), T0 + 21).unwrap();
    let after = alice
        .send(group, b"without carol", &mut r, T0 + 22)
        .unwrap();
    let Message::Chain(post) = &after.message else {
        panic!("a sender-key message")
    };
    assert!(post.handoff.is_some(), "a changed view starts a new chain");
    let at_bob = bob.receive(&after.to_bytes(), T0 + 23).unwrap();
    assert_eq!(messages(&at_bob), vec![b"without carol".to_vec()]);
    let at_carol = carol.receive(&after.to_bytes(), T0 + 23).unwrap();
    assert!(messages(&at_carol).is_empty(), "{at_carol:?}");
}

/// Automatic mode: pairwise envelopes up to the threshold, sender keys above it.
#[test]
fn automatic_mode_switches_above_its_threshold() {
    let mut r = rng(21);
    let (mut alice, _bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    alice
        .set_mode(group, MessageMode::Automatic { above: 2 })
        .unwrap();
    let small = alice.send(group, b"to two", &mut r, T0 + 10).unwrap();
    assert!(matches!(small.message, Message::Envelope(_)));
    let carol = device(MemoryStore::default(), 2, &mut r);
    alice.invite(group, carol.bundle(), T0 + 11).unwrap();
    let large = alice.send(group, b"to three", &mut r, T0 + 12).unwrap();
    assert!(matches!(large.message, Message::Chain(_)));
}

/// A chain's first message is lost; sync hands the chain out again, and the later
/// messages open; then sync falls silent.
#[test]
fn sync_hands_out_a_chain_whose_first_message_was_lost() {
    let mut r = rng(22);
    let a = SqliteStore::in_memory().unwrap();
    let b = SqliteStore::in_memory().unwrap();
    let (mut alice, mut bob, group) = pair(a, b, &mut r);
    alice.set_mode(group, MessageMode::SenderKeys).unwrap();
    let _lost = alice.send(group, b"lost", &mut r, T0 + 10).unwrap();
    let later = alice.send(group, b"later", &mut r, T0 + 11).unwrap();
    bob.receive(&later.to_bytes(), T0 + 12).unwrap();
    assert_eq!(bob.pending().count(), 1);
    let mut opened = Vec::new();
    for round in 0..6 {
        let now = T0 + 20 + round;
        let from_alice = alice.sync_message(group, bob.id()).unwrap();
        let from_bob = bob.sync_message(group, alice.id()).unwrap();
        if from_alice.is_none() && from_bob.is_none() {
            break;
        }
        if let Some(m) = from_alice {
            opened.extend(messages(&bob.receive(&m.to_bytes(), now).unwrap()));
        }
        if let Some(m) = from_bob {
            alice.receive(&m.to_bytes(), now).unwrap();
        }
        assert!(round < 5, "sync did not fall silent");
    }
    assert_eq!(opened, vec![b"later".to_vec()]);
    assert_eq!(bob.pending().count(), 0);
    // Bob's held chain survives a restart.
    let mut bob = Device::open(bob.into_store(), DeviceConfig::default()).unwrap();
    let next = alice
        .send(group, b"after restart", &mut r, T0 + 40)
        .unwrap();
    let events = bob.receive(&next.to_bytes(), T0 + 41).unwrap();
    assert_eq!(messages(&events), vec![b"after restart".to_vec()]);
}

/// Devices `a` and `b` in one group with `authors` authors (the owner, and members who each
/// rotated once), both holding all its operations; and the replica that made them, to sign
/// more members' operations with.
fn many_authors(
    authors: u8,
    r: &mut Rng,
) -> (
    Device<MemoryStore>,
    Device<MemoryStore>,
    splitsafe::group::Replica,
) {
    let mut a = device(MemoryStore::default(), 1, r);
    let mut b = device(MemoryStore::default(), 2, r);
    let (mut replica, _, owner) = support::group::found();
    for bundle in [a.bundle(), b.bundle()] {
        replica.add(&owner, bundle, T0 + 1).unwrap();
    }
    for i in 3..authors.saturating_add(1) {
        let member = identity(i);
        let bundle = support::group::bundle(&member, i, T0 + 1);
        replica.add(&owner, bundle, T0 + 1).unwrap();
        let rotated = support::group::bundle(&member, i.wrapping_add(1), T0 + 2);
        replica.rotate(&member, rotated, T0 + 2).unwrap();
    }
    let welcome = Message::Welcome(Welcome {
        group: replica.group(),
        ops: replica.ops().cloned().collect(),
    });
    for d in [&mut a, &mut b] {
        support::device::join(d, &welcome, T0 + 3);
    }
    (a, b, replica)
}

/// Two devices that hold the same operations exchange one small message each and fall
/// silent, whatever the number of authors: the summary travels as its digest. After a
/// change, the messages sent while both hold the same operations are small too, and so is
/// what each stores of the other.
#[test]
fn devices_in_sync_exchange_two_small_messages_at_any_size() {
    let mut all_sizes = Vec::new();
    for authors in [2u8, 40, 200] {
        let mut sizes = Vec::new();
        let mut r = rng(u64::from(authors));
        let (mut a, mut b, replica) = many_authors(authors, &mut r);
        let group = replica.group();
        let summary = a.replica(group).unwrap().summary();
        assert_eq!(summary, b.replica(group).unwrap().summary());
        assert_eq!(summary.authors.len(), usize::from(authors) - 1);

        // Never spoken: one digest each, then silence.
        let first = a.sync_message(group, b.id()).unwrap().expect("a speaks");
        b.receive(&first.to_bytes(), T0 + 4).unwrap();
        let second = b.sync_message(group, a.id()).unwrap().expect("b answers");
        a.receive(&second.to_bytes(), T0 + 4).unwrap();
        for message in [&first, &second] {
            sizes.push(message.to_bytes().len());
        }
        assert_eq!(a.sync_message(group, b.id()).unwrap(), None);
        assert_eq!(b.sync_message(group, a.id()).unwrap(), None);

        // A change, and sync until silent: whatever is sent while both hold the same
        // operations is small.
        a.rotate(&mut r, T0 + 5).unwrap();
        for _ in 0..8 {
            let mut said = false;
            for turn in 0..2 {
                let (from, to) = if turn == 0 {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                let in_sync =
                    from.replica(group).unwrap().summary() == to.replica(group).unwrap().summary();
                if let Some(m) = from.sync_message(group, to.id()).unwrap() {
                    said = true;
                    if in_sync {
                        sizes.push(m.to_bytes().len());
                    }
                    to.receive(&m.to_bytes(), T0 + 6).unwrap();
                }
            }
            if !said {
                break;
            }
        }
        assert_eq!(a.view(group), b.view(group));
        assert_eq!(a.sync_message(group, b.id()).unwrap(), None);
        // What each stores of its peer: the peer's summary equals its own, so the stored
        // state holds no summary (it is stored as its difference from the device's own).
        for device in [a, b] {
            let stored = device.into_store().load().unwrap().expect("a device");
            sizes.extend(stored.peers.values().map(Vec::len));
        }
        all_sizes.push(sizes);
    }
    // The same messages and stored peer states at every size: nothing in them grows with
    // the group.
    assert!(
        all_sizes.iter().flatten().all(|&n| n <= 256),
        "{all_sizes:?}"
    );
    assert!(all_sizes.windows(2).all(|w| w[0] == w[1]), "{all_sizes:?}");
}

/// Devices meeting for the first time, each holding operations of `d` authors the other
/// lacks (of 250), find out each other's summaries in sync bytes that grow with `d`, not with
/// the group: each message costs its digest and signature, and each difference a region per
/// level of the id space (`spec/device.md`, "Sync"). Once they know each other's summaries,
/// new differences need no finding out: each sends what the other lacks at once.
#[test]
fn sync_between_devices_that_differ_grows_with_the_differences() {
    for d in [1u8, 4, 16] {
        let mut r = rng(61 + u64::from(d));
        let (mut a, mut b, mut replica) = many_authors(250, &mut r);
        let group = replica.group();
        let whole = a.replica(group).unwrap().summary().to_cbor().len();
        for round in 0..2u8 {
            // `d` members rotate and only `a` hears of it; `d` others, and only `b` does.
            for (side, device) in [&mut a, &mut b].into_iter().enumerate() {
                let ops: Vec<_> = (0..d)
                    .map(|k| {
                        let member = identity(3 + k * 13 + round * 2 + side as u8);
                        let bundle = support::group::bundle(&member, 100 + round, T0 + 5);
                        replica.rotate(&member, bundle, T0 + 5).unwrap().0
                    })
                    .collect();
                device
                    .receive(&Message::Operations(ops).to_bytes(), T0 + 5)
                    .unwrap();
            }
            let (messages, overhead) = sync_counting(&mut a, &mut b, group, T0 + 6);
            assert_eq!(
                a.replica(group).unwrap().summary(),
                b.replica(group).unwrap().summary()
            );
            let d = usize::from(d);
            eprintln!(
                "round {round}, {d} differences: {messages} messages, {overhead} B besides \
                 operations (whole summary {whole} B)"
            );
            if round == 0 {
                // Three levels for 250 ids (a split of the space, a split of a sixteenth,
                // then the few authors of a 256th), each costing each side at most a 16-part
                // split (about 350 B) or a few authors per differing author.
                assert!(messages <= 12, "{messages} messages");
                assert!(
                    overhead <= 256 * messages + 2 * d * 3 * 800,
                    "{overhead} B in {messages} messages for {d} differences"
                );
            } else {
                assert!(messages <= 4, "{messages} messages");
                assert!(
                    overhead <= 256 * messages,
                    "{overhead} B in {messages} messages"
                );
            }
        }
    }
}

/// Syncs `a` and `b` until both fall silent: the messages sent, and their bytes besides the
/// operations they carry.
fn sync_counting<S: Store>(
    a: &mut Device<S>,
    b: &mut Device<S>,
    group: GroupId,
    now: u64,
) -> (usize, usize) {
    let (mut messages, mut bytes) = (0, 0);
    for _ in 0..20 {
        let mut said = false;
        for turn in 0..2 {
            let (from, to) = if turn == 0 {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let Some(message) = from.sync_message(group, to.id()).unwrap() else {
                continue;
            };
            said = true;
            messages += 1;
            let Message::Sync(mut sync) = message.clone() else {
                panic!("a sync message")
            };
            sync.ops.clear();
            bytes += Message::Sync(sync).to_bytes().len();
            to.receive(&message.to_bytes(), now).unwrap();
        }
        if !said {
            return (messages, bytes);
        }
    }
    panic!("sync did not fall silent");
}

/// Syncs `a` and `b` in `group` until both fall silent.
fn sync_pair<S: Store>(a: &mut Device<S>, b: &mut Device<S>, group: GroupId, now: u64) {
    for _ in 0..8 {
        let to_b = a.sync_message(group, b.id()).unwrap();
        if let Some(m) = &to_b {
            b.receive(&m.to_bytes(), now).unwrap();
        }
        let to_a = b.sync_message(group, a.id()).unwrap();
        if let Some(m) = &to_a {
            a.receive(&m.to_bytes(), now).unwrap();
        }
        if to_a.is_none() && to_b.is_none() {
            return;
        }
    }
    panic!("sync did not fall silent");
}

/// Alice's store is restored from an older copy, after she had added Carol and Bob had
/// seen it. Bob's summary shows her own chain above what her store holds: she refuses to
/// sign until she has caught up by sync, and then acts without re-using a sequence number.
#[test]
fn a_device_restored_from_an_old_copy_catches_up_before_it_acts() {
    let mut r = rng(30);
    let (mut alice, mut bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    sync_pair(&mut alice, &mut bob, group, T0 + 4);
    let backup = alice.store().clone();
    let carol = device(MemoryStore::default(), 2, &mut r);
    let add = alice.invite(group, carol.bundle(), T0 + 5).unwrap().add;
    bob.receive(&add.to_bytes(), T0 + 6).unwrap();
    sync_pair(&mut alice, &mut bob, group, T0 + 7);
    drop(alice);

    let mut restored = Device::open(backup, DeviceConfig::default()).unwrap();
    let dave = device(MemoryStore::default(), 3, &mut r);
    // Bob has news (a rotation), so he speaks; his summary shows Alice's chain as he holds it.
    bob.rotate(&mut r, T0 + 8).unwrap();
    let hello = bob.sync_message(group, restored.id()).unwrap();
    let hello = hello.expect("Bob has news for the restored copy");
    restored.receive(&hello.to_bytes(), T0 + 8).unwrap();
    let refused = restored.invite(group, dave.bundle(), T0 + 9);
    assert!(
        matches!(refused, Err(DeviceError::Behind { peer, held: 2, claimed: 3, .. }) if peer == bob.id()),
        "{refused:?}"
    );
    assert!(matches!(
        restored.rotate(&mut r, T0 + 9),
        Err(DeviceError::Behind { .. })
    ));
    sync_pair(&mut restored, &mut bob, group, T0 + 10);
    assert!(
        restored.view(group).unwrap().contains(&carol.id()),
        "caught up"
    );
    let add = restored.invite(group, dave.bundle(), T0 + 11).unwrap().add;
    let events = bob.receive(&add.to_bytes(), T0 + 12).unwrap();
    assert!(
        bob.view(group).unwrap().contains(&dave.id()),
        "the add took effect at Bob (no equivocation): {events:?}"
    );
    assert_eq!(bob.view(group), restored.view(group));
}

/// Removing someone already removed says so, and mails nothing.
#[test]
fn removing_someone_already_removed_says_so() {
    let mut r = rng(7);
    let (mut alice, bob, group) = pair(MemoryStore::default(), MemoryStore::default(), &mut r);
    alice.remove(group, bob.id(), T0 + 10).unwrap();
    let before = state(&alice);
    let error = alice.remove(group, bob.id(), T0 + 11).unwrap_err();
    assert!(
        matches!(error, DeviceError::Action(splitsafe::group::ActionError::NotInView(m)) if m == bob.id()),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{} is not in the group here (removed already, left, or never added): nothing to \
             remove",
            bob.id()
        )
    );
    assert_eq!(state(&alice), before);
}

/// A store that counts the commits it is given.
#[derive(Clone, Default)]
struct Counting(MemoryStore, std::rc::Rc<std::cell::Cell<usize>>);

impl Store for Counting {
    fn load(&mut self) -> Result<Option<splitsafe::device::Stored>, splitsafe::device::StoreError> {
        self.0.load()
    }

    fn commit(
        &mut self,
        writes: &[splitsafe::device::Write],
        durability: splitsafe::device::Durability,
    ) -> Result<(), splitsafe::device::StoreError> {
        self.1.set(self.1.get() + 1);
        self.0.commit(writes, durability)
    }
}

/// Reading does not write: a reopened device that ticks with nothing due, lists its groups,
/// members and invitations, and makes a sync message it has already said commits nothing.
#[test]
fn read_only_calls_do_not_write() {
    let mut r = rng(8);
    let (alice, _bob, group) = pair(Counting::default(), Counting::default(), &mut r);
    let mut alice = Device::open(alice.into_store(), DeviceConfig::default()).unwrap();
    let now = T0 + 10;
    alice.tick(now).unwrap();
    let commits = alice.store().1.clone();
    let before = commits.get();
    alice.tick(now + 1).unwrap();
    let _ = (
        alice.groups().count(),
        alice.view(group).unwrap().members().count(),
    );
    let _ = alice.invitations().count();
    let _ = alice.unacknowledged().count();
    assert_eq!(commits.get(), before, "a tick with nothing due wrote");
}

/// Every outgoing item names who it is for: a sealed message its view, an operation the
/// members before and after it (the removed and the leaving included, the newcomer left to
/// its welcome), a welcome the newcomer, a sync message its one peer, past members too.
#[test]
fn every_outgoing_item_says_who_it_is_for() {
    let mut r = rng(12);
    let (mut d, group) = support::device::group_of(3, DeviceConfig::default(), &mut r);
    let id: Vec<_> = d.iter().map(Device::id).collect();
    let mut dave = device(MemoryStore::default(), 3, &mut r);
    let sorted = |mut ids: Vec<splitsafe::keys::MemberId>| {
        ids.sort();
        ids
    };

    let invitation = d[0].invite(group, dave.bundle(), T0 + 10).unwrap();
    assert_eq!(invitation.add.to, sorted(vec![id[1], id[2]]));
    assert_eq!(invitation.welcome.to, [dave.id()]);
    support::device::join(&mut dave, &invitation.welcome, T0 + 11);
    for member in &mut d[1..] {
        member.receive(&invitation.add.to_bytes(), T0 + 11).unwrap();
    }
    let all = [id.clone(), vec![dave.id()]].concat();
    let everyone_but = |me: usize| {
        let mut all = all.clone();
        all.remove(me);
        sorted(all)
    };
    let sealed = d[1].send(group, b"hello", &mut r, T0 + 12).unwrap();
    assert_eq!(sealed.to, everyone_but(1));
    let rank = d[0]
        .set_rank(group, id[1], splitsafe::group::Rank::Admin, T0 + 13)
        .unwrap();
    assert_eq!(rank.to, everyone_but(0));
    let rotations = d[2].rotate(&mut r, T0 + 14).unwrap();
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].to, everyone_but(2));

    let removal = d[0].remove(group, id[2], T0 + 15).unwrap();
    assert_eq!(removal.to, everyone_but(0), "the removed member learns it");
    let leaving = d[1].leave(group, T0 + 16).unwrap();
    assert_eq!(leaving.to, everyone_but(1), "the removal is not here yet");
    for op in [&rank, &rotations[0], &removal] {
        dave.receive(&op.to_bytes(), T0 + 17).unwrap();
    }
    let after = dave.send(group, b"without carol", &mut r, T0 + 18).unwrap();
    assert_eq!(after.to, sorted(vec![id[0], id[1]]));
    // Alice's syncs are due to every member and past member, one peer each.
    let mut addressed = Vec::new();
    for sync in d[0].syncs_due().unwrap() {
        let [to] = sync.to[..] else {
            panic!("a sync message is for one peer")
        };
        addressed.push(to);
    }
    assert_eq!(addressed, everyone_but(0), "Carol, removed, is among them");
}

/// `syncs_due` addresses every member and past member: a removal whose mail was lost still
/// reaches the removed member, every view converges, and then nothing more is due.
#[test]
fn syncs_due_reach_past_members_and_fall_silent() {
    let mut r = rng(9);
    let (mut d, group) = support::device::group_of(3, DeviceConfig::default(), &mut r);
    let carol = d[2].id();
    // Alice removes Carol; the removal reaches nobody (its mail is lost).
    d[0].remove(group, carol, T0 + 10).unwrap();
    let mut rounds = 0;
    loop {
        let mut said = false;
        for from in 0..3 {
            for sync in d[from].syncs_due().unwrap() {
                let [to] = sync.to[..] else {
                    panic!("a sync message is for one peer")
                };
                said = true;
                let to = (0..3)
                    .find(|&i| d[i].id() == to)
                    .expect("a device of the group");
                d[to].receive(&sync.to_bytes(), T0 + 20).unwrap();
            }
        }
        if !said {
            break;
        }
        rounds += 1;
        assert!(rounds < 10, "sync did not fall silent");
    }
    assert!(
        !d[2].view(group).unwrap().contains(&carol),
        "Carol learned of her removal"
    );
    let digest = d[0].view(group).unwrap().digest();
    assert!((0..3).all(|i| d[i].view(group).unwrap().digest() == digest));
}
