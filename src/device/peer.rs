//! The sync driver's state for one peer in one group, and its rule for when to speak.
//!
//! A device speaks to a peer when it has not told it its current summary (and which of the
//! peer's chains it holds), when it has never heard from it, when the peer's last summary
//! shows operations it lacks, or when the peer last said it lacks this device's current
//! chain (which it then hands over again). Hearing a summary different from its own makes
//! it speak again, since the peer may have missed what it said. So over a transport that
//! loses, duplicates and reorders, two devices that keep calling
//! [`Device::sync_message`](super::Device::sync_message) converge once three messages in a
//! row get through, and then both fall silent.

use crate::crypto::ChainId;
use crate::group::{Replica, SignedOp, Summary};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Peer {
    /// The summary the peer last sent.
    theirs: Option<Summary>,
    /// The digest of the summary (and held chain) this device last sent it.
    #[serde(with = "serde_bytes")]
    told: Option<[u8; 32]>,
    /// The chain of this device's the peer last said it holds.
    #[serde(default)]
    holds_mine: Option<ChainId>,
}

/// What to tell a peer.
pub(super) struct Speech {
    pub(super) summary: Summary,
    pub(super) ops: Vec<SignedOp>,
    /// Hand this device's current chain over (again).
    pub(super) handoff: bool,
}

fn digest(summary: &Summary, holds: Option<ChainId>) -> [u8; 32] {
    let mut bytes = summary.to_cbor();
    if let Some(chain) = holds {
        bytes.extend_from_slice(&chain.0);
    }
    blake3::derive_key("splitsafe v1 sync told", &bytes)
}

impl Peer {
    /// What to send the peer now, or `None` if there is nothing to say. `holds` is the
    /// peer's chain this device holds; `own`, this device's current chain if the peer is in
    /// the view it serves.
    pub(super) fn next(
        &self,
        replica: &Replica,
        holds: Option<ChainId>,
        own: Option<ChainId>,
    ) -> Option<Speech> {
        let summary = replica.summary();
        let ops = self
            .theirs
            .as_ref()
            .map(|theirs| replica.missing_for(theirs).unwrap_or_default())
            .unwrap_or_default();
        let told = self.told == Some(digest(&summary, holds));
        let handoff = own.is_some() && self.holds_mine != own;
        if told && self.theirs.is_some() && ops.is_empty() && !handoff {
            return None;
        }
        Some(Speech {
            summary,
            ops,
            handoff,
        })
    }

    /// Records that `summary` and `holds` were sent.
    pub(super) fn sent(&mut self, summary: &Summary, holds: Option<ChainId>) {
        self.told = Some(digest(summary, holds));
    }

    /// Records the peer's summary and the chain of this device's it holds; if its summary
    /// differs from this device's, the peer may have missed what this device said, so it
    /// will say it again.
    pub(super) fn heard(&mut self, theirs: Summary, holds_mine: Option<ChainId>, mine: &Summary) {
        if &theirs != mine {
            self.told = None;
        }
        self.theirs = Some(theirs);
        self.holds_mine = holds_mine;
    }
}
