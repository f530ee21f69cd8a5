//! Group membership: signed operations, the authorization fold, the member view, sync and
//! snapshots.
//!
//! The normative text is `spec/membership.md`.

mod error;
mod fold;
mod op;
mod pen;
mod replica;
mod snapshot;
mod sync;
mod view;

pub use error::{ActionError, IngestError};
pub use fold::Change;
pub use op::{Body, GroupId, InvalidOp, Op, OpId, SignedOp, Stamp, MAX_OP_LEN};
pub use replica::{BatchReport, Ingested, Replica, ReplicaConfig, Status};
pub use snapshot::{Loaded, SnapshotError};
pub use sync::{AuthorSummary, Fingerprint, Summary};
pub use view::{View, ViewDigest};
