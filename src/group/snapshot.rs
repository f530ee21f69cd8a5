//! Saving a replica to bytes and loading it back.
//!
//! A snapshot is a CBOR map `{version, body, checksum}`: `body` is the CBOR of the replica's
//! group, clock and operations (logged in stamp order, held back in stamp order, quarantined
//! in sequence-number order); `checksum` is its BLAKE3 hash (derive-key context
//! `"splitsafe v1 snapshot"`), which catches damage, not forgery.
//!
//! Loading trusts the file no more than the network: the settings are the caller's, a saved
//! clock beyond local time plus the drift bound is refused, and every operation goes through
//! the ingest pipeline again (signatures, structure, group, the drift rule, the pens), so a
//! future-dated operation stays held until local time reaches it, whatever list the file put
//! it in.

use super::error::IngestError;
use super::op::{Body, GroupId, SignedOp};
use super::replica::{Replica, ReplicaConfig};
use crate::clock::{Clock, ClockError, Timestamp};
use crate::codec::{self, DecodeError};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    version: u32,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    checksum: [u8; 32],
}

/// Version 3: operations in the chained layout of op format v2. Versions 1 and 2 held
/// operations of op format v1, which carried no chain and no watermarks: they are refused.
///
/// Saved from references to the replica's operations (`T = &SignedOp`: no copy of the log),
/// loaded into boxes (`T = Box<SignedOp>`: each becomes its node in the log, and the vector
/// decoding grows is of pointers, not of 392-byte operations).
#[derive(Serialize, Deserialize)]
struct SnapshotBody<T> {
    group: GroupId,
    clock: Timestamp,
    ops: Vec<T>,
    held: Vec<T>,
    quarantined: Vec<T>,
}

fn checksum(body: &[u8]) -> [u8; 32] {
    blake3::derive_key("splitsafe v1 snapshot", body)
}

/// Why a snapshot could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// The bytes are not a well-formed snapshot.
    Decode(DecodeError),
    /// Written by a version of the format this code does not read.
    UnsupportedVersion(u32),
    /// The body does not match its checksum: the bytes were damaged.
    ChecksumMismatch,
    /// No operation in the snapshot is the group's genesis.
    NoGenesis,
    /// The genesis is refused, as it would be off the network.
    Genesis(IngestError),
    /// The saved clock is further ahead of local time than the drift bound: a replica
    /// never gets there honestly, so the file is forged or local time is badly wrong.
    ClockAhead(ClockError),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "malformed snapshot: {e}"),
            Self::UnsupportedVersion(v) => write!(
                f,
                "snapshot version {v} is not supported (this code reads version {})",
                Replica::SNAPSHOT_VERSION
            ),
            Self::ChecksumMismatch => f.write_str("snapshot body does not match its checksum"),
            Self::NoGenesis => f.write_str("snapshot holds no genesis operation for its group"),
            Self::Genesis(e) => write!(f, "snapshot genesis refused: {e}"),
            Self::ClockAhead(e) => write!(f, "snapshot clock refused: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            Self::Genesis(e) => Some(e),
            Self::ClockAhead(e) => Some(e),
            _ => None,
        }
    }
}

/// A loaded replica, and the saved operations that the current rules refuse.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The replica.
    pub replica: Replica,
    /// Each refused operation with the reason, in the file's order; the rest loaded.
    pub refused: Vec<(SignedOp, IngestError)>,
}

impl From<DecodeError> for SnapshotError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl Replica {
    /// The snapshot format this code writes and reads.
    pub const SNAPSHOT_VERSION: u32 = 3;

    /// Saves the replica: everything needed to [`load`](Self::load) an identical one but the
    /// settings, which are the caller's.
    pub fn save(&self) -> Vec<u8> {
        let body = codec::encode(&SnapshotBody {
            group: self.group(),
            clock: self.clock().last(),
            ops: self.ops().collect(),
            held: self.held().collect(),
            quarantined: self.quarantined().collect(),
        });
        codec::encode(&SnapshotFile {
            version: Self::SNAPSHOT_VERSION,
            checksum: checksum(&body),
            body,
        })
    }

    /// Loads a replica saved by [`save`](Self::save), from at most `max_len` bytes, with the
    /// caller's `config`, at local physical time `physical_ms`.
    ///
    /// Loaded with the saver's settings at the time it was saved (or later, before any held
    /// operation falls due), the replica equals the saved one: view, digest, summary, held
    /// operations, quarantine, and clock. Saved operations that the rules
    /// now refuse are returned in [`Loaded::refused`] and the rest loads.
    ///
    /// # Errors
    ///
    /// [`SnapshotError`] if the file as a whole is unusable: malformed, of an unknown
    /// version, damaged, without a valid genesis, or with a clock beyond the drift bound.
    pub fn load(
        bytes: &[u8],
        config: ReplicaConfig,
        max_len: usize,
        physical_ms: u64,
    ) -> Result<Loaded, SnapshotError> {
        let file: SnapshotFile = codec::decode(bytes, max_len)?;
        if file.version != Self::SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(file.version));
        }
        if checksum(&file.body) != file.checksum {
            return Err(SnapshotError::ChecksumMismatch);
        }
        let body: SnapshotBody<Box<SignedOp>> = codec::decode(&file.body, max_len)?;
        // The body's bytes are a fifth of what the replica will hold: freed before it grows.
        drop(file);
        Clock::new(config.clock)
            .check(body.clock, physical_ms)
            .map_err(SnapshotError::ClockAhead)?;
        let is_genesis = |op: &SignedOp| {
            matches!(op.op().body, Body::Create { .. }) && op.id().0 == body.group.0
        };
        let genesis = body
            .ops
            .iter()
            .chain(&body.held)
            .find(|op| is_genesis(op))
            .ok_or(SnapshotError::NoGenesis)?;
        let mut replica =
            Self::join(genesis, config, physical_ms).map_err(SnapshotError::Genesis)?;
        let mut all = body.ops;
        all.reserve_exact(body.held.len() + body.quarantined.len());
        all.extend(body.held);
        all.extend(body.quarantined);
        let refused = replica.ingest_boxes(all, physical_ms).refused;
        replica.restore_clock(body.clock);
        Ok(Loaded { replica, refused })
    }
}
