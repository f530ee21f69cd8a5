//! Saving a replica to bytes and loading it back.
//!
//! A snapshot is a CBOR map `{version, body, checksum}`: `body` is the CBOR of the replica's
//! group, settings, clock and operations (logged, held back, quarantined); `checksum` is its
//! BLAKE3 hash (derive-key context `"splitsafe v1 snapshot"`). Loading checks the version and
//! the checksum, then re-verifies every signature and re-folds, so a snapshot is trusted no
//! more than the network.

use super::error::IngestError;
use super::op::{Body, GroupId, SignedOp};
use super::replica::{Replica, ReplicaConfig};
use crate::clock::Timestamp;
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

#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    group: GroupId,
    config: ReplicaConfig,
    clock: Timestamp,
    ops: Vec<SignedOp>,
    held: Vec<SignedOp>,
    quarantined: Vec<SignedOp>,
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
    /// An operation in the snapshot is refused, as it would be off the network.
    Op(IngestError),
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
            Self::Op(e) => write!(f, "snapshot holds a refused operation: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl From<DecodeError> for SnapshotError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl Replica {
    /// The snapshot format this code writes and reads.
    pub const SNAPSHOT_VERSION: u32 = 1;

    /// Saves the replica: everything needed to [`load`](Self::load) an identical one.
    pub fn save(&self) -> Vec<u8> {
        let body = codec::encode(&SnapshotBody {
            group: self.group(),
            config: self.config(),
            clock: self.clock().last(),
            ops: self.ops().cloned().collect(),
            held: self.held().cloned().collect(),
            quarantined: self.quarantined().cloned().collect(),
        });
        codec::encode(&SnapshotFile {
            version: Self::SNAPSHOT_VERSION,
            checksum: checksum(&body),
            body,
        })
    }

    /// Loads a replica saved by [`save`](Self::save), from at most `max_len` bytes, at local
    /// physical time `physical_ms`. The view and its digest equal the saved replica's.
    ///
    /// # Errors
    ///
    /// [`SnapshotError`] saying what was wrong; nothing is loaded.
    pub fn load(bytes: &[u8], max_len: usize, physical_ms: u64) -> Result<Self, SnapshotError> {
        let file: SnapshotFile = codec::decode(bytes, max_len)?;
        if file.version != Self::SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(file.version));
        }
        if checksum(&file.body) != file.checksum {
            return Err(SnapshotError::ChecksumMismatch);
        }
        let body: SnapshotBody = codec::decode(&file.body, max_len)?;
        let genesis = body
            .ops
            .iter()
            .find(|op| matches!(op.op().body, Body::Create { .. }) && op.id().0 == body.group.0)
            .ok_or(SnapshotError::NoGenesis)?;
        // Every logged operation was stamped at or before the saved clock, so none of them is
        // held back as future-dated when loaded at that time or later.
        let now = physical_ms.max(body.clock.millis());
        let mut replica = Self::join(genesis, body.config, now).map_err(SnapshotError::Op)?;
        let all = body
            .ops
            .into_iter()
            .chain(body.held)
            .chain(body.quarantined);
        let report = replica.ingest_batch(all.collect(), now);
        if let Some(Err(e)) = report.results.into_iter().find(Result::is_err) {
            return Err(SnapshotError::Op(e));
        }
        replica.restore_clock(body.clock);
        Ok(replica)
    }
}
