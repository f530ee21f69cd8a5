//! Group membership: signed, chained operations, the authority engine (ranks, strong removal,
//! LWW among valid adds and removes), the member view, sync and snapshots.
//!
//! The normative text is `spec/membership.md`.

mod authority;
mod branches;
mod error;
mod op;
mod pen;
mod reconcile;
mod replica;
mod small_map;
mod snapshot;
mod standing;
mod sync;
mod view;

pub use authority::Change;
pub use error::{ActionError, IngestError};
pub use op::{Body, GroupId, InvalidOp, Op, OpId, Rank, SignedOp, Stamp, Watermark, MAX_OP_LEN};
pub use reconcile::{
    Description, Part, Prefix, Reconciliation, RegionFingerprint, TooManyAuthors, BRANCHING, LEAF,
    MAX_ASKS, MAX_AUTHORS, MAX_DEPTH,
};
pub use replica::{BatchReport, Ingested, Replica, ReplicaConfig, Status};
pub use snapshot::{Loaded, SnapshotError};
pub use standing::{PositionError, Standing};
pub use sync::{AuthorSummary, Fingerprint, Summary, SummaryDigest};
pub use view::{View, ViewDigest};
