//! Who sent it, judged by the reader (review finding F4).
//!
//! Every header field is the sender's claim. A removed member still holds its keys and can
//! build envelopes with any stamp, view digest and position; the reader judges it by the
//! position against its own log: never as a member, and refused by default when the
//! position is beyond its removal. These tests build envelopes by hand, as such a sender
//! would.

use crate::support;

use proptest::prelude::*;
use splitsafe::clock::Timestamp;
use splitsafe::crypto::{Envelope, Header, KeyId, Keyring, OpenError, SealOptions, SenderPolicy};
use splitsafe::group::{
    Body, PositionError, Replica, ReplicaConfig, SignedOp, Standing, ViewDigest, Watermark,
};
use splitsafe::keys::MemberId;
use support::crypto::{forge_envelope, keyring_with_secret, rng};
use support::group::{bundle, identity, sync_until_quiet, T0};
use x25519_dalek::StaticSecret;

const DAY: u64 = 24 * 60 * 60 * 1000;

/// Alice (0) founds the group with Bob (1), Mallory (2, whose X25519 secret this test
/// knows) and Carol (3).
struct World {
    alice: Keyring,
    bob: Keyring,
    mallory: Keyring,
    mallory_secret: StaticSecret,
    genesis: SignedOp,
    /// Alice's replica.
    group: Replica,
}

fn world() -> World {
    let keyring = |i: u8| keyring_with_secret(identity(i), u64::from(i)).0;
    let (alice, bob, carol) = (keyring(0), keyring(1), keyring(3));
    let (mallory, mallory_secret) = keyring_with_secret(identity(2), 2);
    let (mut group, genesis) = Replica::create(
        alice.identity(),
        alice.bundle(),
        [1; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    for (i, member) in [&bob, &mallory, &carol].into_iter().enumerate() {
        group
            .add(alice.identity(), member.bundle(), T0 + 1 + i as u64)
            .unwrap();
    }
    World {
        alice,
        bob,
        mallory,
        mallory_secret,
        genesis,
        group,
    }
}

impl World {
    /// A device holding every operation of Alice's replica.
    fn copy(&self, now: u64) -> Replica {
        let mut replica = Replica::join(&self.genesis, ReplicaConfig::default(), now).unwrap();
        replica.ingest_batch(self.group.ops().cloned().collect(), now);
        replica
    }

    /// An envelope from Mallory to Bob with the header fields she chooses.
    fn forged_by_mallory(
        &self,
        stamp_ms: u64,
        view: ViewDigest,
        position: Watermark,
        signed: bool,
    ) -> Envelope {
        let header = Header {
            version: Header::VERSION,
            group: self.group.group(),
            sender: self.mallory.identity().id(),
            stamp: Timestamp::from_physical(stamp_ms),
            position,
            sender_key: KeyId::of(&self.mallory.bundle().encryption_key),
            view,
            nonce: [stamp_ms as u8; 16],
            commitment: [0; 32],
            signed,
        };
        let bob = self.bob.bundle().encryption_key;
        forge_envelope(
            header,
            &self.mallory_secret,
            &[bob],
            b"Alice says: wire the money to Mallory",
            &[3; 32],
        )
    }
}

fn mallory() -> MemberId {
    identity(2).id()
}

/// The attack of the review: removed after 30 days, Mallory seals envelopes stamped long
/// before her removal (or after it), with the view digest anyone can compute from the ops.
/// They no longer read as a member's: with the reader's own view digest she claims to have
/// sealed to a view without herself (beyond her removal: refused by default); with any
/// other digest she is reported as removed, by the removal, whatever the stamp.
#[test]
fn a_removed_member_backdating_envelopes_is_judged_by_position_not_stamp() {
    let mut w = world();
    let stale_view = w.group.view().digest();
    let (removal, _) = w
        .group
        .remove(w.alice.identity(), mallory(), T0 + 30 * DAY)
        .unwrap();
    let now = T0 + 31 * DAY + 1;
    let mut at_bob = w.copy(now);
    let current_view = at_bob.view().digest();
    let by = removal.id();

    for (stamp_ms, sign) in [(T0 + 100, false), (T0 + 100, true), (T0 + 31 * DAY, false)] {
        let claims_current = w.forged_by_mallory(stamp_ms, current_view, Watermark::NONE, sign);
        let clock = at_bob.clock().last();
        assert_eq!(
            w.bob.open(&claims_current, &mut at_bob, now).unwrap_err(),
            OpenError::SenderRefused {
                sender: mallory(),
                standing: Standing::Beyond { by },
            }
        );
        assert_eq!(
            at_bob.clock().last(),
            clock,
            "a refused envelope changes nothing"
        );
        w.bob.set_sender_policy(SenderPolicy::ReportAll);
        let opened = w.bob.open(&claims_current, &mut at_bob, now).unwrap();
        assert_eq!(opened.standing, Standing::Beyond { by });
        assert!(opened.same_view);

        let claims_stale = w.forged_by_mallory(stamp_ms, stale_view, Watermark::NONE, sign);
        w.bob.set_sender_policy(SenderPolicy::default());
        let opened = w.bob.open(&claims_stale, &mut at_bob, now).unwrap();
        assert_eq!(opened.standing, Standing::Removed { by });
        assert_eq!(opened.signed, sign);
        assert!(!opened.same_view);
        w.bob.set_sender_policy(SenderPolicy::MembersOnly);
        assert_eq!(
            w.bob.open(&claims_stale, &mut at_bob, now).unwrap_err(),
            OpenError::SenderRefused {
                sender: mallory(),
                standing: Standing::Removed { by },
            }
        );
        w.bob.set_sender_policy(SenderPolicy::default());
    }
}

/// In a netsplit Mallory, not knowing she was removed, rotates her key and keeps sending
/// from her side. The rotation is beyond what the remover had seen, so her messages sealed
/// after it are refused by the reader who knows of the removal, whether or not the reader
/// has her rotation; a message she sealed before it is reported as a removed member's.
#[test]
fn messages_sealed_after_operations_the_remover_had_not_seen_are_beyond_the_removal() {
    let mut w = world();
    let mut at_mallory = w.copy(T0 + 10);
    let (removal, _) = w
        .group
        .remove(w.alice.identity(), mallory(), T0 + 20)
        .unwrap();
    let mut at_bob = w.copy(T0 + 30);
    let mut r = rng(5);
    let before = w
        .mallory
        .seal(
            &mut at_mallory,
            T0 + 25,
            b"before",
            SealOptions::default(),
            &mut r,
        )
        .unwrap();
    let (rotation, _) = w.mallory.rotate(&mut r, &mut at_mallory, T0 + 26).unwrap();
    let after = w
        .mallory
        .seal(
            &mut at_mallory,
            T0 + 27,
            b"after",
            SealOptions::default(),
            &mut r,
        )
        .unwrap();
    assert_eq!(after.header.position.seq, 1);
    let by = removal.id();
    let opened = w.bob.open(&before, &mut at_bob, T0 + 40).unwrap();
    assert_eq!(opened.standing, Standing::Removed { by });
    // Bob has not seen the rotation yet: it is not her key, so he could not open it anyway.
    assert!(matches!(
        w.bob.open(&after, &mut at_bob, T0 + 40),
        Err(OpenError::UnknownSenderKey { .. })
    ));
    at_bob.ingest(rotation, T0 + 41).unwrap();
    let refused = OpenError::SenderRefused {
        sender: mallory(),
        standing: Standing::Beyond { by },
    };
    assert_eq!(
        w.bob.open(&after, &mut at_bob, T0 + 42).unwrap_err(),
        refused
    );
}

/// A position the reader cannot place is not guessed at: an operation it has not logged
/// is a cue to sync (the envelope opens once it arrives), one off the sender's chain is
/// refused, and a stranger is refused before any key is looked up.
#[test]
fn positions_must_name_the_senders_logged_chain() {
    let mut w = world();
    let mut at_bob = w.copy(T0 + 10);
    let mut r = rng(6);
    // Alice promotes Carol; Bob has not seen it when her next message arrives.
    let (promotion, _) = w
        .group
        .promote(w.alice.identity(), identity(3).id(), T0 + 20)
        .unwrap();
    let envelope = w
        .alice
        .seal(&mut w.group, T0 + 21, b"hi", SealOptions::default(), &mut r)
        .unwrap();
    let seq = envelope.header.position.seq;
    assert_eq!(envelope.header.position.op, promotion.id());
    let unknown = OpenError::Position(PositionError::Unknown {
        sender: identity(0).id(),
        seq,
    });
    assert_eq!(
        w.bob.open(&envelope, &mut at_bob, T0 + 30).unwrap_err(),
        unknown
    );
    at_bob.ingest(promotion, T0 + 31).unwrap();
    let opened = w.bob.open(&envelope, &mut at_bob, T0 + 32).unwrap();
    assert_eq!(opened.standing, Standing::Member);

    // Mallory (still a member) claims Alice's genesis as her position.
    let genesis = Watermark {
        seq: 1,
        op: w.genesis.id(),
    };
    let view = at_bob.view().digest();
    let off_chain = w.forged_by_mallory(T0 + 40, view, genesis, false);
    assert_eq!(
        w.bob.open(&off_chain, &mut at_bob, T0 + 41).unwrap_err(),
        OpenError::Position(PositionError::OffChain {
            sender: mallory(),
            seq: 1,
        })
    );

    // A stranger's envelope names a sender no add ever admitted.
    let mut stranger = w.forged_by_mallory(T0 + 40, view, Watermark::NONE, false);
    stranger.header.sender = identity(9).id();
    assert_eq!(
        w.bob.open(&stranger, &mut at_bob, T0 + 41).unwrap_err(),
        OpenError::Position(PositionError::NeverAMember(identity(9).id()))
    );
}

/// A member who left is judged by its own leave: positions before it are a removed member's,
/// the leave itself and beyond are void.
#[test]
fn a_leave_governs_its_own_position() {
    let w = world();
    let mut at_mallory = w.copy(T0 + 10);
    let (leave, _) = at_mallory.leave(w.mallory.identity(), T0 + 20).unwrap();
    let mut at_bob = w.copy(T0 + 10);
    at_bob.ingest(leave.clone(), T0 + 30).unwrap();
    let by = leave.id();
    let at_leave = Watermark {
        seq: 1,
        op: leave.id(),
    };
    assert_eq!(
        at_bob.standing(&mallory(), Watermark::NONE),
        Ok(Standing::Removed { by })
    );
    assert_eq!(
        at_bob.standing(&mallory(), at_leave),
        Ok(Standing::Beyond { by })
    );
    let beyond = Watermark {
        seq: 2,
        op: splitsafe::group::OpId([9; 32]),
    };
    assert_eq!(
        at_bob.standing(&mallory(), beyond),
        Ok(Standing::Beyond { by })
    );
}

/// One step of a two-sided history: Alice acts on side 0, Bob and Carol on side 1, Mallory
/// (2) on side 0, each not knowing what the other side did until a sync. Each member acts on
/// one side only: one identity, one device, so no chain forks.
#[derive(Clone, Copy, Debug)]
enum Step {
    Remove(u8),
    ReAdd(u8),
    Rotate(u8),
    Leave(u8),
    Sync,
}

fn step() -> impl Strategy<Value = Step> {
    let who = 1u8..4;
    prop_oneof![
        who.clone().prop_map(Step::Remove),
        who.clone().prop_map(Step::ReAdd),
        who.clone().prop_map(Step::Rotate),
        who.prop_map(Step::Leave),
        Just(Step::Sync),
    ]
}

/// Plays `steps` on two copies of the group and merges them; refused actions are skipped.
fn play(w: &World, steps: &[Step]) -> Replica {
    let mut sides = [w.copy(T0 + 50), w.copy(T0 + 50)];
    let alice = identity(0);
    for (i, step) in steps.iter().enumerate() {
        let now = T0 + 100 + 10 * i as u64;
        let _ = match *step {
            Step::Remove(who) => sides[0].remove(&alice, identity(who).id(), now).map(drop),
            Step::ReAdd(who) => {
                let added = bundle(&identity(who), who, T0);
                sides[0].add(&alice, added, now).map(drop)
            }
            Step::Rotate(who) => {
                let key = bundle(&identity(who), 10 + i as u8, now);
                sides[usize::from(who % 2)]
                    .rotate(&identity(who), key, now)
                    .map(drop)
            }
            Step::Leave(who) => sides[usize::from(who % 2)]
                .leave(&identity(who), now)
                .map(drop),
            Step::Sync => {
                let [a, b] = &mut sides;
                sync_until_quiet(a, b, now);
                Ok(())
            }
        };
    }
    let [mut a, mut b] = sides;
    sync_until_quiet(&mut a, &mut b, T0 + 10_000);
    a
}

proptest! {
    #![proptest_config(support::config_with_cases(64))]

    /// Laws of the judgment, over random two-sided histories and every position on each
    /// member's logged chain: it is a function of the logged operations (another delivery
    /// order gives the same verdicts); `Member` only for a member of the reader's view;
    /// `Removed` and `Beyond` only for one outside it, naming the remove or leave that took it
    /// out, which had seen the position (`Removed`) or not (`Beyond`).
    #[test]
    fn standing_is_a_function_of_the_log_and_never_flatters(
        steps in proptest::collection::vec(step(), 0..14),
        order in any::<u64>(),
    ) {
        let w = world();
        let reader = play(&w, &steps);
        let ops: Vec<SignedOp> = reader.ops().cloned().collect();
        let mut shuffled = ops.clone();
        let mut state = order | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut other = Replica::join(&w.genesis, ReplicaConfig::default(), T0).unwrap();
        other.ingest_batch(shuffled, T0 + 10_000);
        let by_id = |id| ops.iter().find(|op| op.id() == id).unwrap().op();
        // What the remove or leave `by` had seen of its subject's chain.
        let seen = |by| match &by_id(by).body {
            Body::Remove { watermark, .. } => watermark.seq,
            Body::Leave => by_id(by).seq - 1,
            body => panic!("{body:?} took a member out"),
        };
        for member in (0..4).map(|i| identity(i).id()) {
            let mut positions = vec![Watermark::NONE];
            positions.extend(ops.iter().filter(|op| op.op().author == member).map(|op| {
                Watermark { seq: op.op().seq, op: op.id() }
            }));
            for position in positions {
                let verdict = reader.standing(&member, position);
                prop_assert_eq!(verdict, other.standing(&member, position));
                match verdict {
                    Ok(Standing::Member) => prop_assert!(reader.is_member(&member)),
                    Ok(Standing::Removed { by }) => {
                        prop_assert!(!reader.is_member(&member));
                        prop_assert_eq!(reader.is_effective(&by), Some(true));
                        prop_assert!(position.seq <= seen(by));
                    }
                    Ok(Standing::Beyond { by }) => {
                        prop_assert!(!reader.is_member(&member));
                        prop_assert_eq!(reader.is_effective(&by), Some(true));
                        prop_assert!(position.seq > seen(by));
                    }
                    Err(e) => prop_assert!(false, "{} for a logged position", e),
                }
            }
        }
    }
}
