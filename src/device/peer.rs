//! The sync driver's state for one peer in one group, and its rule for when to speak.
//!
//! A device speaks to a peer when it has not told it its current summary (and which of the
//! peer's chains it holds), when it has never heard from it, when the peer's last summary
//! shows operations it lacks, or when the peer last said it lacks this device's current
//! chain (which it then hands over again). Hearing a summary different from its own makes
//! it speak again, since the peer may have missed what it said. It sends only its summary's
//! digest when the peer's last word was that same digest, or when it has not heard from
//! the peer yet (the two may well be in sync: then two small messages settle it); otherwise
//! the whole summary. So over a transport that loses, duplicates and reorders, two devices
//! that keep calling [`Device::sync_message`](super::Device::sync_message) converge once
//! three messages in a row get through (four the first time they meet), and then both fall
//! silent.

use crate::crypto::ChainId;
use crate::group::{AuthorSummary, Replica, SignedOp, Summary, SummaryDigest};
use crate::keys::MemberId;
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
    /// Local ms when the peer's summary was last heard.
    #[serde(default)]
    heard_ms: u64,
    /// The digest the peer's last sync message stated.
    #[serde(default)]
    heard: Option<SummaryDigest>,
}

/// What to tell a peer.
pub(super) struct Speech {
    pub(super) summary: Summary,
    /// The summary's digest (hashing a summary costs O(authors): computed once).
    pub(super) digest: SummaryDigest,
    /// Send the summary whole (else its digest only).
    pub(super) whole: bool,
    pub(super) ops: Vec<SignedOp>,
    /// Hand this device's current chain over (again).
    pub(super) handoff: bool,
}

fn digest(summary: &SummaryDigest, holds: Option<ChainId>) -> [u8; 32] {
    let mut bytes = summary.0.to_vec();
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
        let mine = summary.digest();
        let ops = self
            .theirs
            .as_ref()
            .map(|theirs| replica.missing_for(theirs).unwrap_or_default())
            .unwrap_or_default();
        let told = self.told == Some(digest(&mine, holds));
        let handoff = own.is_some() && self.holds_mine != own;
        if told && self.theirs.is_some() && ops.is_empty() && !handoff {
            return None;
        }
        Some(Speech {
            summary,
            digest: mine,
            whole: self.heard.is_some_and(|heard| heard != mine),
            ops,
            handoff,
        })
    }

    /// Records that a summary with digest `summary` and `holds` were sent.
    pub(super) fn sent(&mut self, summary: &SummaryDigest, holds: Option<ChainId>) {
        self.told = Some(digest(summary, holds));
    }

    /// Records what the peer said: the digest of its summary, the summary itself if sent,
    /// whether it sent operations, and the chain of this device's it holds. A summary
    /// different from this device's (stated, or told by its digest) means the peer may have
    /// missed what this device said, so it will say it again, whole; a digest equal to its
    /// own means the peer holds what it holds. Operations sent mean the peer believes this
    /// device lacks them: it answers, so that the peer learns otherwise (else a peer whose
    /// last news of this device was lost would send them forever).
    pub(super) fn heard(
        &mut self,
        digest: SummaryDigest,
        theirs: Option<Summary>,
        sent_ops: bool,
        holds_mine: Option<ChainId>,
        mine: &Summary,
        now_ms: u64,
    ) {
        let same = digest == mine.digest();
        if !same || sent_ops {
            self.told = None;
        }
        let theirs = theirs.or_else(|| same.then(|| mine.clone()));
        if let Some(theirs) = theirs {
            self.theirs = Some(theirs);
            self.heard_ms = now_ms;
        }
        self.heard = Some(digest);
        self.holds_mine = holds_mine;
    }

    /// What the peer's last summary, heard at or after `since_ms`, says it holds of
    /// `author`'s chain, if that shows an operation `held` lacks: more operations, or a later
    /// one.
    pub(super) fn holds_more_of(
        &self,
        author: &MemberId,
        held: Option<&AuthorSummary>,
        since_ms: u64,
    ) -> Option<&AuthorSummary> {
        let theirs = self.theirs.as_ref()?.authors.get(author)?;
        let ahead = match held {
            None => true,
            Some(held) => theirs.count > held.count || theirs.max > held.max,
        };
        (ahead && self.heard_ms >= since_ms).then_some(theirs)
    }
}
