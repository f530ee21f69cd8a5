//! The sync driver's state for one peer in one group, and its rule for when to speak.
//!
//! A device speaks to a peer when it has not told it its current summary, when it has never
//! heard from it, or when the peer's last summary shows operations it lacks. Hearing a
//! summary different from its own makes it speak again, since the peer may have missed what
//! it said. So over a transport that loses, duplicates and reorders, two devices that keep
//! calling [`Device::sync_message`](super::Device::sync_message) converge once three
//! messages in a row get through, and then both fall silent.

use crate::group::{Replica, SignedOp, Summary};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Peer {
    /// The summary the peer last sent.
    theirs: Option<Summary>,
    /// The digest of the summary this device last sent it.
    #[serde(with = "serde_bytes")]
    told: Option<[u8; 32]>,
}

fn digest(summary: &Summary) -> [u8; 32] {
    blake3::derive_key("splitsafe v1 sync told", &summary.to_cbor())
}

impl Peer {
    /// What to send the peer now (this device's summary and the operations the peer lacks
    /// as far as it knows), or `None` if there is nothing to say.
    pub(super) fn next(&self, replica: &Replica) -> Option<(Summary, Vec<SignedOp>)> {
        let mine = replica.summary();
        let ops = self
            .theirs
            .as_ref()
            .map(|theirs| replica.missing_for(theirs).unwrap_or_default())
            .unwrap_or_default();
        let told = self.told == Some(digest(&mine));
        if told && self.theirs.is_some() && ops.is_empty() {
            return None;
        }
        Some((mine, ops))
    }

    /// Records that `summary` was sent.
    pub(super) fn sent(&mut self, summary: &Summary) {
        self.told = Some(digest(summary));
    }

    /// Records the peer's summary; if it differs from this device's, the peer may have
    /// missed what this device said, so it will say it again.
    pub(super) fn heard(&mut self, theirs: Summary, mine: &Summary) {
        if &theirs != mine {
            self.told = None;
        }
        self.theirs = Some(theirs);
    }
}
