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
use std::collections::BTreeMap;

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
    /// The peer's digest when this device last told it `yours`: told once per digest.
    #[serde(default)]
    yours_for: Option<SummaryDigest>,
    /// Operations sent and not yet seen arrive: the peer's digest when they were sent, and
    /// this device's entries for their authors (what the peer holds of them once they
    /// arrive). They are sent again in every message while the peer's digest stays what it
    /// was; once it changes, the peer is taken to hold them (if it does not, its digest
    /// differs from this device's, and finding out corrects `theirs`).
    #[serde(default)]
    in_flight: Option<(SummaryDigest, BTreeMap<MemberId, AuthorSummary>)>,
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
    /// This device's entries for the authors whose operations `ops` carries: what the peer
    /// holds of them once the message arrives.
    delivered: BTreeMap<MemberId, AuthorSummary>,
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
        let ops = self
            .theirs
            .as_ref()
            .map(|theirs| replica.missing_for(theirs).unwrap_or_default())
            .unwrap_or_default();
        let delivered = ops
            .iter()
            .filter_map(|op| {
                let author = op.op().author;
                Some((author, *summary.authors.get(&author)?))
            })
            .collect();
        // Not knowing the peer's summary at all, it asks about the whole space: the peer then
        // knows to answer, if only with its digest (else a device whose first message was
        // lost, hearing an equal digest, would never speak again, and the peer never learn
        // it holds the same).
        let asks = match (&self.learning, &self.theirs) {
            (Some(learning), _) => learning.asks(),
            (None, None) => vec![Prefix::root()],
            (None, Some(_)) => Vec::new(),
        };
        let tells: Vec<Description> = self.owed.iter().map(|p| summary.describe(p)).collect();
        let told = self.told == Some(digest(&mine, holds));
        let handoff = own.is_some() && self.holds_mine != own;
        let quiet = ops.is_empty() && asks.is_empty() && tells.is_empty() && !handoff;
        // While finding out, it speaks at every call, asks due or not: its messages are what
        // makes the peer speak, and the peer's what makes its asks due again.
        if told && self.theirs.is_some() && self.learning.is_none() && quiet {
            return None;
        }
        Some(Speech {
            digest: mine,
            // Told once per digest of the peer's that differs from this device's: what a
            // restored copy needs to learn it is behind, without 170 bytes in every message.
            yours: (self.heard != Some(mine) && self.yours_for != self.heard)
                .then(|| summary.authors.get(peer).copied())
                .flatten(),
            asks,
            tells,
            ops,
            delivered,
            handoff,
        })
    }

    /// Records that `speech` was sent, saying this device holds `holds`: the peer's asks
    /// are answered, and its operations are in flight until the peer's digest changes.
    pub(super) fn sent(&mut self, speech: &Speech, holds: Option<ChainId>) {
        self.told = Some(digest(&speech.digest, holds));
        self.owed.clear();
        if let Some(learning) = &mut self.learning {
            learning.asked(&speech.asks);
        }
        if speech.yours.is_some() {
            self.yours_for = self.heard;
        }
        if let (false, Some(heard)) = (speech.delivered.is_empty(), self.heard) {
            let (since, delivered) = self
                .in_flight
                .get_or_insert_with(|| (heard, BTreeMap::new()));
            if *since != heard {
                (*since, *delivered) = (heard, BTreeMap::new());
            }
            delivered.extend(&speech.delivered);
        }
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
    /// peer believes this device lacks them, and asks that it does not know what this
    /// device holds: either way it answers, so that the peer learns otherwise (else a peer
    /// whose last news of this device was lost would send them forever). The peer's asks
    /// replace those not answered yet (each message asks all it needs), unless its digest
    /// equals this device's: then the answer is that digest.
    pub(super) fn heard(
        &mut self,
        sync: &SyncMessage,
        sent_ops: bool,
        mine: &Summary,
        now_ms: u64,
        max: u64,
    ) {
        let same = sync.digest == mine.digest();
        if !same || sent_ops || !sync.asks.is_empty() {
            self.told = None;
        }
        if let Some((since, delivered)) = &self.in_flight {
            if *since != sync.digest {
                if let Some(theirs) = &mut self.theirs {
                    theirs.authors.extend(delivered);
                }
                self.in_flight = None;
            }
        }
        if same {
            self.theirs = Some(mine.clone());
            self.heard_ms = now_ms;
            self.learning = None;
            self.in_flight = None;
        } else {
            let learning = self.learning.get_or_insert_with(Reconciliation::default);
            learning.heard();
            if learning.take(mine, &sync.tells, max).is_ok() && learning.is_complete() {
                let found = self.learning.take().expect("found out").into_found();
                self.theirs = Some(Summary {
                    group: mine.group,
                    authors: found,
                });
                self.heard_ms = now_ms;
                self.in_flight = None;
            }
        }
        // A peer whose digest equals this device's stops finding out when it hears that
        // digest in this device's next message: its asks need no answer.
        self.owed = if same { Vec::new() } else { sync.asks.clone() };
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
