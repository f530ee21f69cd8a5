//! The sync driver's state for one peer in one group, and its rule for when to speak.
//!
//! A device speaks to a peer when it has not told it its current summary digest (and which
//! of the peer's chains it holds), when it has never heard from it, when what it knows of
//! the peer's summary shows operations the peer lacks, when it is finding out the peer's
//! summary (it asks about regions of it: see [`Reconciliation`]), when the peer asked it
//! about regions of its own, or when the peer last said it lacks this device's current chain
//! (which it then hands over again). Hearing a digest different from its own makes it speak
//! again, since the peer may have missed what it said, and starts finding out the peer's
//! summary, unless it is doing so already. So over a transport that loses, duplicates and
//! reorders, two devices that keep calling
//! [`Device::sync_message`](super::Device::sync_message) converge, and then both fall silent
//! (`spec/device.md`, "Sync").

use super::SyncMessage;
use crate::crypto::ChainId;
use crate::group::{
    AuthorSummary, Description, Prefix, Reconciliation, Replica, SignedOp, Summary, SummaryDigest,
    TooManyAuthors,
};
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
    /// What this device has found out of the peer's summary since it last heard a digest
    /// different from its own, while it is finding out.
    #[serde(default)]
    learning: Option<Reconciliation>,
    /// The regions of this device's summary the peer last asked about, not answered yet.
    #[serde(default)]
    owed: Vec<Prefix>,
    /// What the peer last said it holds of this device's own operations, and the local ms
    /// when it said so.
    #[serde(default)]
    yours: Option<(AuthorSummary, u64)>,
}

/// What to tell a peer.
pub(super) struct Speech {
    /// The digest of this device's summary.
    pub(super) digest: SummaryDigest,
    /// Regions of the peer's summary to ask about.
    pub(super) asks: Vec<Prefix>,
    /// Answers to the peer's asks.
    pub(super) tells: Vec<Description>,
    /// What this device holds of the peer's own operations.
    pub(super) yours: Option<AuthorSummary>,
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
        peer: &MemberId,
        replica: &Replica,
        holds: Option<ChainId>,
        own: Option<ChainId>,
    ) -> Option<Speech> {
        let summary = replica.summary();
        let mine = summary.digest();
        // While finding out, what is known of the peer's summary is older than what is being
        // found: operations wait for the answer.
        let ops = match (&self.theirs, &self.learning) {
            (Some(theirs), None) => replica.missing_for(theirs).unwrap_or_default(),
            _ => Vec::new(),
        };
        let asks = self
            .learning
            .as_ref()
            .map(Reconciliation::asks)
            .unwrap_or_default();
        let tells: Vec<Description> = self.owed.iter().map(|p| summary.describe(p)).collect();
        let told = self.told == Some(digest(&mine, holds));
        let handoff = own.is_some() && self.holds_mine != own;
        let quiet = ops.is_empty() && asks.is_empty() && tells.is_empty() && !handoff;
        if told && self.theirs.is_some() && quiet {
            return None;
        }
        Some(Speech {
            digest: mine,
            yours: (!quiet)
                .then(|| summary.authors.get(peer).copied())
                .flatten(),
            asks,
            tells,
            ops,
            handoff,
        })
    }

    /// Records that a message stating digest `summary`, answering the peer's asks, and
    /// saying it holds `holds`, was sent.
    pub(super) fn sent(&mut self, summary: &SummaryDigest, holds: Option<ChainId>) {
        self.told = Some(digest(summary, holds));
        self.owed.clear();
    }

    /// Whether taking the descriptions in `sync` would make this device take the peer to
    /// hold more than `max` authors.
    pub(super) fn check(&self, sync: &SyncMessage, max: u64) -> Result<(), TooManyAuthors> {
        match &self.learning {
            Some(learning) => learning.check(&sync.tells, max),
            None => Reconciliation::default().check(&sync.tells, max),
        }
    }

    /// Records what the peer said in `sync` (its operations taken already: `sent_ops` says
    /// whether there were any), `mine` being this device's summary now, and `max` the most
    /// authors it takes the peer to hold ([`check`](Self::check)ed).
    ///
    /// A digest different from this device's means the peer may have missed what this
    /// device said, so it will say it again, and that this device does not know what the
    /// peer holds: it finds out (or goes on finding out), taking the peer's descriptions. A
    /// digest equal to its own means the peer holds what it holds. Operations sent mean the
    /// peer believes this device lacks them: it answers, so that the peer learns otherwise
    /// (else a peer whose last news of this device was lost would send them forever). The
    /// peer's asks replace those not answered yet: each message asks all it needs.
    pub(super) fn heard(
        &mut self,
        sync: &SyncMessage,
        sent_ops: bool,
        mine: &Summary,
        now_ms: u64,
        max: u64,
    ) {
        let same = sync.digest == mine.digest();
        if !same || sent_ops {
            self.told = None;
        }
        if same {
            self.theirs = Some(mine.clone());
            self.heard_ms = now_ms;
            self.learning = None;
        } else {
            let learning = self.learning.get_or_insert_with(Reconciliation::default);
            if learning.take(mine, &sync.tells, max).is_ok() && learning.is_complete() {
                let found = self.learning.take().expect("found out").into_found();
                self.theirs = Some(Summary {
                    group: mine.group,
                    authors: found,
                });
                self.heard_ms = now_ms;
            }
        }
        self.owed = sync.asks.clone();
        if let Some(yours) = sync.yours {
            self.yours = Some((yours, now_ms));
        }
        self.heard = Some(sync.digest);
        self.holds_mine = sync.holds;
    }

    /// What the peer last said, at or after `since_ms`, it holds of `author`'s chain (this
    /// device's own: in its summary, or in a message's `yours`), if that shows an operation
    /// `held` lacks: more operations, or a later one.
    pub(super) fn holds_more_of(
        &self,
        author: &MemberId,
        held: Option<&AuthorSummary>,
        since_ms: u64,
    ) -> Option<&AuthorSummary> {
        let summary = self.theirs.as_ref().and_then(|theirs| {
            let entry = theirs.authors.get(author)?;
            (self.heard_ms >= since_ms).then_some(entry)
        });
        let said = self
            .yours
            .as_ref()
            .and_then(|(entry, at)| (*at >= since_ms).then_some(entry));
        let ahead = |theirs: &&AuthorSummary| match held {
            None => true,
            Some(held) => theirs.count > held.count || theirs.max > held.max,
        };
        summary.filter(ahead).or_else(|| said.filter(ahead))
    }
}
