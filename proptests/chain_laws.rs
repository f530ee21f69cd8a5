//! Sender chains (the primitive of issue 12's sender-key mode): every message opens exactly
//! once in any order within the skip window; replays, indices past the window, indices
//! before a receiver's copy and erased skipped keys are refused with typed errors and change
//! nothing; a receiver, who holds the chain key, cannot forge the sender's messages.

use crate::support;

use proptest::prelude::*;
use splitsafe::clock::Timestamp;
use splitsafe::crypto::{ChainError, ChainMessage, ReceivingChain, SendingChain};
use splitsafe::group::{GroupId, Watermark};
use support::crypto::rng;
use support::group::{identity, T0};

fn chain(seed: u64) -> SendingChain {
    SendingChain::new(GroupId([7; 32]), identity(1).id(), &mut rng(seed))
}

fn seal(sender: &mut SendingChain, n: usize) -> Vec<ChainMessage> {
    (0..n)
        .map(|i| {
            sender
                .seal(
                    Timestamp::from_physical(T0 + i as u64),
                    Watermark::NONE,
                    format!("m{i}").as_bytes(),
                )
                .unwrap()
        })
        .collect()
}

proptest! {
    #![proptest_config(support::config_with_cases(64))]

    /// Any delivery order within the window, with duplicates: each message opens exactly
    /// once, to its plaintext; every repeat is `AlreadyUsed` and changes nothing.
    #[test]
    fn any_order_opens_each_message_once(
        n in 1usize..40,
        order in proptest::collection::vec(any::<prop::sample::Index>(), 1..80),
        seed in any::<u64>(),
    ) {
        let mut sender = chain(seed);
        let mut receiver = ReceivingChain::new(&sender.handoff(), 64);
        let messages = seal(&mut sender, n);
        let mut opened = vec![false; n];
        for pick in order.iter().map(|i| i.index(n)).chain(0..n) {
            let result = receiver.open(&messages[pick], T0);
            if opened[pick] {
                prop_assert_eq!(result, Err(ChainError::AlreadyUsed(pick as u32)));
            } else {
                prop_assert_eq!(result, Ok(format!("m{pick}").into_bytes()));
                opened[pick] = true;
            }
        }
        prop_assert_eq!(receiver.skipped(), 0, "every skipped key was used and dropped");
    }
}

#[test]
fn indices_past_the_window_are_refused_and_change_nothing() {
    let mut sender = chain(1);
    let mut receiver = ReceivingChain::new(&sender.handoff(), 10);
    let messages = seal(&mut sender, 13);
    assert_eq!(
        receiver.open(&messages[11], T0),
        Err(ChainError::TooFarAhead {
            index: 11,
            next: 0,
            window: 10
        })
    );
    assert_eq!(receiver.skipped(), 0);
    assert_eq!(receiver.open(&messages[10], T0), Ok(b"m10".to_vec()));
    assert_eq!(receiver.skipped(), 10);
    assert_eq!(receiver.open(&messages[0], T0), Ok(b"m0".to_vec()));
}

/// A member handed the chain at index k reads from k on, and nothing before (the chain is
/// one-way).
#[test]
fn a_late_receiver_reads_nothing_before_its_handoff() {
    let mut sender = chain(2);
    let early = seal(&mut sender, 5);
    let mut late = ReceivingChain::new(&sender.handoff(), 64);
    let later = seal(&mut sender, 2);
    for (i, message) in early.iter().enumerate() {
        assert_eq!(
            late.open(message, T0),
            Err(ChainError::AlreadyUsed(i as u32))
        );
    }
    assert_eq!(late.open(&later[1], T0), Ok(b"m1".to_vec()));
    assert_eq!(late.open(&later[0], T0), Ok(b"m0".to_vec()));
}

/// Skipped keys are kept for their grace period, then erased.
#[test]
fn skipped_keys_are_erased_after_their_grace() {
    let mut sender = chain(3);
    let mut receiver = ReceivingChain::new(&sender.handoff(), 64);
    let messages = seal(&mut sender, 6);
    receiver.open(&messages[5], T0).unwrap();
    assert_eq!(receiver.erase_skipped(T0 + 999, 1_000), 0);
    assert_eq!(receiver.open(&messages[1], T0 + 999), Ok(b"m1".to_vec()));
    assert_eq!(receiver.erase_skipped(T0 + 1_000, 1_000), 4);
    assert_eq!(
        receiver.open(&messages[2], T0 + 1_000),
        Err(ChainError::AlreadyUsed(2))
    );
}

/// A receiver knows the chain key, so it can encrypt a message the chain would accept, but
/// not sign it: forged messages are refused, and so are altered ones, before any state
/// changes.
#[test]
fn receivers_cannot_forge_and_alterations_are_refused() {
    let mut sender = chain(4);
    let mut receiver = ReceivingChain::new(&sender.handoff(), 64);
    // The insider rebuilds the chain from its handoff: the same key, index and header
    // fields, every byte as the sender would make it, but its own signing key.
    let mut insider = SendingChain::restore(&sender.handoff(), identity(9));
    let genuine = seal(&mut sender, 1).remove(0);
    let forged = seal(&mut insider, 1).remove(0);
    assert_eq!(forged.header, genuine.header);
    assert_eq!(forged.ciphertext, genuine.ciphertext);
    assert_eq!(receiver.open(&forged, T0), Err(ChainError::BadSignature));
    let mut altered = genuine.clone();
    altered.ciphertext[0] ^= 1;
    assert_eq!(receiver.open(&altered, T0), Err(ChainError::BadSignature));
    let mut elsewhere = genuine.clone();
    elsewhere.header.group = GroupId([8; 32]);
    assert_eq!(receiver.open(&elsewhere, T0), Err(ChainError::WrongChain));
    assert_eq!(receiver.open(&genuine, T0), Ok(b"m0".to_vec()));
}

/// The size of a 1 KiB message does not depend on the group: header, payload, tag,
/// signature.
#[test]
fn a_message_costs_its_payload_plus_a_fixed_overhead() {
    let mut sender = chain(5);
    let message = sender
        .seal(Timestamp::from_physical(T0), Watermark::NONE, &[0; 1024])
        .unwrap();
    assert_eq!(message.len(), 1024 + 165 + 16 + 64);
}
