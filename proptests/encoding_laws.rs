//! One value, one encoding (`spec/formats.md`, "Encoding"): every structure that crosses a
//! wire or a file is accepted only in the deterministic encoding this crate writes. A decoder
//! that took other spellings of a value would let two implementations disagree on what they
//! accept, and would let anyone change a copy's bytes (and so its copy id) without changing
//! what it says.

use crate::support;

use proptest::prelude::*;
use splitsafe::codec::DecodeError;
use splitsafe::crypto::{ChainMessage, Envelope, Limits, OpenError};
use splitsafe::device::{DeviceConfig, Message, MessageMode, SyncMessage};
use splitsafe::group::{Replica, ReplicaConfig, SignedOp, SnapshotError, Summary};
use splitsafe::lww::LwwSet;
use support::crypto::rng;
use support::device::group_of;
use support::group::{identity, T0};

type Decoder = Box<dyn Fn(&[u8]) -> Result<(), DecodeError>>;

/// A structure's encoding and its decoder, reduced to the decoding error if any.
struct Sample {
    name: &'static str,
    bytes: Vec<u8>,
    decode: Decoder,
}

const MAX: usize = 1 << 20;

fn message_decoder() -> Decoder {
    Box::new(|b| Message::from_bytes(b, MAX, Limits::default()).map(drop))
}

/// One real instance of every CBOR structure: each device message kind (operations, an
/// envelope, a bundle, a welcome, a sync message with its summary, a sender-key message with
/// its handoff), each on its own, a summary, a snapshot and an LWW set.
fn samples() -> Vec<Sample> {
    let r = &mut rng(5);
    let (mut devices, group) = group_of(3, DeviceConfig::default(), r);
    let mut out = Vec::new();
    let mut message = |name, message: &Message| {
        out.push(Sample {
            name,
            bytes: message.to_bytes(),
            decode: message_decoder(),
        })
    };
    let envelope = devices[0].send(group, b"hello", r, T0 + 10).unwrap();
    message("Message::Envelope", &envelope);
    devices[0].set_mode(group, MessageMode::SenderKeys).unwrap();
    let chain = devices[0].send(group, b"on a chain", r, T0 + 11).unwrap();
    message("Message::Chain", &chain);
    message("Message::Bundle", &Message::Bundle(devices[1].bundle()));
    let welcome = devices[0].welcome(group).unwrap();
    message("Message::Welcome", &welcome);
    let carol = devices[2].id();
    let remove = devices[0].remove(group, carol, T0 + 12).unwrap();
    message("Message::Operations", &remove);
    let replica = devices[0].replica(group).unwrap().clone();
    let ops = replica.ops().take(2).cloned().collect();
    let content = support::device::sync_content(&replica.summary(), ops);
    let sync = SyncMessage::new(&identity(0), group, content);
    message("Message::Sync", &Message::Sync(sync));

    let Message::Envelope(sealed) = &envelope.message else {
        panic!("pairwise mode seals envelopes")
    };
    out.push(Sample {
        name: "envelope",
        bytes: sealed.to_cbor(),
        decode: Box::new(|b| match Envelope::from_cbor(b, Limits::default()) {
            Err(OpenError::Malformed(e)) => Err(e),
            other => other
                .map(drop)
                .map_err(|e| panic!("not a decoding error: {e}")),
        }),
    });
    let Message::Chain(post) = &chain.message else {
        panic!("sender-key mode")
    };
    out.push(Sample {
        name: "chain message",
        bytes: post.message.to_cbor(),
        decode: Box::new(|b| ChainMessage::from_cbor(b, MAX).map(drop)),
    });
    out.push(Sample {
        name: "operation",
        bytes: replica.ops().nth(1).unwrap().to_cbor(),
        decode: Box::new(|b| SignedOp::from_cbor(b).map(drop)),
    });
    out.push(Sample {
        name: "summary",
        bytes: replica.summary().to_cbor(),
        decode: Box::new(|b| Summary::from_cbor(b).map(drop)),
    });
    out.push(Sample {
        name: "snapshot",
        bytes: replica.save(),
        decode: Box::new(
            |b| match Replica::load(b, ReplicaConfig::default(), MAX, T0 + 100) {
                Err(SnapshotError::Decode(e)) => Err(e),
                other => other
                    .map(drop)
                    .map_err(|e| panic!("not a decoding error: {e}")),
            },
        ),
    });
    let mut set = LwwSet::new();
    set.insert(3u32, 7u64).unwrap();
    set.insert(900u32, 1u64 << 40).unwrap();
    set.remove(3u32, 8u64).unwrap();
    out.push(Sample {
        name: "lww set",
        bytes: set.to_cbor(),
        decode: Box::new(|b| LwwSet::<u32, u64>::from_cbor(b, MAX).map(drop)),
    });
    out
}

/// A CBOR item head: where it starts, its major type, its additional information and its
/// length in bytes.
#[derive(Clone, Copy, Debug)]
struct Head {
    at: usize,
    major: u8,
    info: u8,
    len: usize,
}

/// Every head of the item at `at`, in order, and where the item ends. Walks definite
/// lengths only: what this crate writes.
fn walk(bytes: &[u8], at: usize, heads: &mut Vec<Head>) -> usize {
    let major = bytes[at] >> 5;
    let info = bytes[at] & 0x1f;
    let (arg, len) = match info {
        0..=23 => (u64::from(info), 1),
        24..=27 => {
            let n = 1 << (info - 24);
            let arg = bytes[at + 1..at + 1 + n]
                .iter()
                .fold(0u64, |a, b| (a << 8) | u64::from(*b));
            (arg, 1 + n)
        }
        _ => panic!("an indefinite length in this crate's own encoding at byte {at}"),
    };
    heads.push(Head {
        at,
        major,
        info,
        len,
    });
    let mut next = at + len;
    match major {
        2 | 3 => next += arg as usize,
        4 => (0..arg).for_each(|_| next = walk(bytes, next, heads)),
        5 => (0..2 * arg).for_each(|_| next = walk(bytes, next, heads)),
        6 => next = walk(bytes, next, heads),
        _ => {}
    }
    next
}

fn heads(bytes: &[u8]) -> Vec<Head> {
    let mut heads = Vec::new();
    assert_eq!(walk(bytes, 0, &mut heads), bytes.len());
    heads
}

/// The same value with `head`'s argument written one size wider: valid CBOR of the same
/// value, not in its shortest form. `None` for a head already 8 bytes wide, or a simple
/// value (major type 7, where a wider form means something else).
fn widened(bytes: &[u8], head: Head) -> Option<Vec<u8>> {
    if head.major == 7 || head.info == 27 {
        return None;
    }
    let arg = if head.info < 24 {
        u64::from(head.info)
    } else {
        bytes[head.at + 1..head.at + head.len]
            .iter()
            .fold(0u64, |a, b| (a << 8) | u64::from(*b))
    };
    let info = if head.info < 24 { 24 } else { head.info + 1 };
    let width = 1usize << (info - 24);
    let mut out = bytes[..head.at].to_vec();
    out.push((head.major << 5) | info);
    out.extend_from_slice(&arg.to_be_bytes()[8 - width..]);
    out.extend_from_slice(&bytes[head.at + head.len..]);
    Some(out)
}

/// The same value with a definite-length array, map or string at `head` written with an
/// indefinite length (a string as one chunk).
fn indefinite(bytes: &[u8], head: Head, end: usize) -> Option<Vec<u8>> {
    let mut out = bytes[..head.at].to_vec();
    match head.major {
        2 | 3 => {
            out.push((head.major << 5) | 31);
            out.extend_from_slice(&bytes[head.at..end]);
        }
        4 | 5 => {
            out.push((head.major << 5) | 31);
            out.extend_from_slice(&bytes[head.at + head.len..end]);
        }
        _ => return None,
    }
    out.push(0xff);
    out.extend_from_slice(&bytes[end..]);
    Some(out)
}

/// Widening any one head of any structure gives bytes every lenient CBOR decoder reads as
/// the same value; each is refused as not canonical, at exactly that head.
#[test]
fn a_value_spelled_with_a_wider_integer_or_length_is_refused_at_that_byte() {
    let mut checked = 0;
    for sample in samples() {
        assert_eq!((sample.decode)(&sample.bytes), Ok(()), "{}", sample.name);
        for head in heads(&sample.bytes) {
            let Some(bytes) = widened(&sample.bytes, head) else {
                continue;
            };
            assert_eq!(
                (sample.decode)(&bytes),
                Err(DecodeError::NotCanonical { offset: head.at }),
                "{}: head at byte {} widened",
                sample.name,
                head.at
            );
            checked += 1;
        }
    }
    // About 400 across the samples: a walk that lost its way would check far fewer.
    assert!(checked > 300, "only {checked} heads were checked");
}

/// Writing any one array, map or string with an indefinite length is refused too, as not
/// canonical at that head or as malformed (a decoder need not read indefinite lengths at
/// all).
#[test]
fn a_value_spelled_with_an_indefinite_length_is_refused() {
    for sample in samples() {
        for head in heads(&sample.bytes) {
            let end = walk(&sample.bytes, head.at, &mut Vec::new());
            let Some(bytes) = indefinite(&sample.bytes, head, end) else {
                continue;
            };
            match (sample.decode)(&bytes) {
                Err(DecodeError::NotCanonical { offset }) => assert_eq!(offset, head.at),
                Err(_) => {}
                Ok(()) => panic!("{}: indefinite length at {} accepted", sample.name, head.at),
            }
        }
    }
}

/// The encoding of every device message kind, made once.
fn message_samples() -> &'static [Vec<u8>] {
    static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(|| {
        samples()
            .into_iter()
            .filter(|s| s.name.starts_with("Message::"))
            .map(|s| s.bytes)
            .collect()
    })
}

proptest! {
    #![proptest_config(support::config_with_cases(64))]

    /// Whatever bytes a device accepts as a message, the message encodes back to exactly
    /// those bytes: damage a real message of any kind anywhere (change, insert or delete a
    /// byte), and either it is refused or it is the deterministic encoding of what it says.
    #[test]
    fn accepted_bytes_are_the_deterministic_encoding_of_what_they_say(
        which in 0usize..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4),
    ) {
        let originals = message_samples();
        let mut bytes = originals[which].clone();
        for (at, kind, byte) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        if let Ok(message) = Message::from_bytes(&bytes, MAX, Limits::default()) {
            prop_assert_eq!(message.to_bytes(), bytes);
        }
    }
}
