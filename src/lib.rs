//! # splitsafe
//!
//! Group membership and group encryption for messengers that have no central server to
//! order events: chat over email, federated and peer-to-peer apps.
//!
//! Every device answers *who is in the group?* with a CRDT that cannot fork, even while the
//! network is split. The crate is built in layers, each pure (no I/O, no wall-clock reads,
//! no hidden randomness), so every test and simulation replays from a seed:
//!
//! | module | owns |
//! |---|---|
//! | [`codec`] | bounded, strict CBOR encoding and decoding shared by every layer |
//! | [`clock`] | [`Timestamp`](clock::Timestamp), a hybrid logical clock stamp, and [`Clock`](clock::Clock) |
//! | [`lww`] | [`LwwSet`](lww::LwwSet), a generic Last-Writer-Wins Element Set |
//! | [`keys`] | [`Identity`](keys::Identity) (Ed25519) and self-signed [`KeyBundle`](keys::KeyBundle)s |
//! | [`group`] | signed, chained operations, authorization by rank and watermark, the member [`View`](group::View), sync, snapshots |
//! | [`crypto`] | [`Keyring`](crypto::Keyring): pairwise keys, [`Envelope`](crypto::Envelope)s sealed to the view, rotation and erasure |
//! | [`wire`] | ASCII armor for envelopes and batches of operations |
//! | `rng` | the operating system's CSPRNG, for keys and sealing (default feature `os-rng`) |
//!
//! The normative rules live in the repository's `spec/` folder.
//!
//! ```
//! use splitsafe::clock::{Clock, ClockConfig};
//! use splitsafe::lww::LwwSet;
//!
//! // Two replicas, each with its own hybrid logical clock; physical time is an argument.
//! let (mut alice, mut bob) = (Clock::new(ClockConfig::default()), Clock::new(ClockConfig::default()));
//! let mut left: LwwSet<&str, _> = LwwSet::new();
//! let mut right = left.clone();
//!
//! // The network splits; both sides edit the same element.
//! left.insert("carol", alice.send(1_000)).unwrap();
//! right.remove("carol", bob.send(1_001)).unwrap();
//!
//! // The split heals: merging in either direction gives the same set.
//! let mut a = left.clone();
//! a.merge(&right).unwrap();
//! let mut b = right.clone();
//! b.merge(&left).unwrap();
//! assert_eq!(a, b);
//! assert!(!a.contains(&"carol")); // the later remove wins
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clock;
pub mod codec;
pub mod crypto;
pub mod device;
pub mod group;
pub mod keys;
pub mod lww;
#[cfg(feature = "os-rng")]
pub mod rng;
pub mod sim;
pub mod wire;
mod xof;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
