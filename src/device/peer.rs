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
use crate::codec;
use crate::crypto::ChainId;
use crate::group::{
    AuthorSummary, Description, Prefix, Reconciliation, Replica, SignedOp, Summary, SummaryDigest,
    TooManyAuthors,
};
use crate::keys::MemberId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The sync state of one peer. Stored as it is, except for its two copies of (parts of) the
/// peer's summary, which are stored as their difference from this device's own summary
/// ([`encode_stored`](Peer::encode_stored)): in the steady state they equal it, and a summary is
/// megabytes in a large group, written at every sync message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Peer {
    /// The summary the peer last sent. Only rows written before differences were stored
    /// hold it; [`theirs_diff`](Self::theirs_diff) replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    theirs: Option<Summary>,
    /// The peer's summary as stored: its difference from this device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    theirs_diff: Option<Diff>,
    /// What has been found out of the peer's summary, as stored: its difference from this
    /// device's summary over the regions settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    found_diff: Option<Diff>,
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

/// Entries of a map of summary entries where it differs from this device's summary, within
/// some regions: `Some` where the map has an entry and this device another or none, `None`
/// where only this device has one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Diff(BTreeMap<MemberId, Option<AuthorSummary>>);

impl Diff {
    /// The difference of `theirs` from `mine`'s entries of the authors `within` selects:
    /// one walk over both maps in author order.
    fn between(
        theirs: &BTreeMap<MemberId, AuthorSummary>,
        mine: &BTreeMap<MemberId, AuthorSummary>,
        within: impl Fn(&MemberId) -> bool,
    ) -> Self {
        let mut diff = BTreeMap::new();
        let (mut theirs, mut mine) = (theirs.iter().peekable(), mine.iter().peekable());
        loop {
            let next = match (theirs.peek(), mine.peek()) {
                (None, None) => break,
                (Some((t, _)), Some((m, _))) => t.cmp(m),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
            };
            match next {
                Ordering::Less => {
                    let (id, entry) = theirs.next().expect("peeked");
                    diff.insert(*id, Some(*entry));
                }
                Ordering::Greater => {
                    let (id, _) = mine.next().expect("peeked");
                    if within(id) {
                        diff.insert(*id, None);
                    }
                }
                Ordering::Equal => {
                    let ((id, entry), (_, own)) = theirs.next().zip(mine.next()).expect("peeked");
                    if !within(id) || entry != own {
                        diff.insert(*id, Some(*entry));
                    }
                }
            }
        }
        Self(diff)
    }

    /// The map it is the difference of: the inverse of [`between`](Self::between) with the
    /// same `mine` and `within`.
    fn apply(
        self,
        mine: &BTreeMap<MemberId, AuthorSummary>,
        within: impl Fn(&MemberId) -> bool,
    ) -> BTreeMap<MemberId, AuthorSummary> {
        let mut map: BTreeMap<MemberId, AuthorSummary> = mine
            .iter()
            .filter(|(id, _)| within(id))
            .map(|(id, entry)| (*id, *entry))
            .collect();
        for (id, entry) in self.0 {
            match entry {
                Some(entry) => map.insert(id, entry),
                None => map.remove(&id),
            };
        }
        map
    }
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
    /// The state as stored, `mine` being this device's summary as of the operations stored
    /// with it: [`restored`](Self::restored) with the same summary gives this state back.
    /// So every write of operations that changes the summary writes each peer's state
    /// again.
    pub(super) fn encode_stored(&mut self, mine: &Summary) -> Vec<u8> {
        // Taken out for the encoding and put back, not cloned: they are the large parts.
        let theirs = self.theirs.take();
        let found = self
            .learning
            .as_mut()
            .map(|l| std::mem::take(l.found_mut()));
        self.theirs_diff = theirs
            .as_ref()
            .map(|theirs| Diff::between(&theirs.authors, &mine.authors, |_| true));
        self.found_diff = match (&self.learning, &found) {
            (Some(learning), Some(found)) => Some(Diff::between(found, &mine.authors, |id| {
                !learning.is_open(id)
            })),
            _ => None,
        };
        let bytes = codec::encode(&*self);
        self.theirs = theirs;
        if let (Some(learning), Some(found)) = (&mut self.learning, found) {
            *learning.found_mut() = found;
        }
        (self.theirs_diff, self.found_diff) = (None, None);
        bytes
    }

    /// The state a stored one describes, `mine` being this device's summary as of the
    /// operations stored with it.
    pub(super) fn restored(mut self, mine: &Summary) -> Self {
        if let Some(diff) = self.theirs_diff.take() {
            self.theirs = Some(Summary {
                group: mine.group,
                authors: diff.apply(&mine.authors, |_| true),
            });
        }
        if let (Some(diff), Some(learning)) = (self.found_diff.take(), &mut self.learning) {
            let found = diff.apply(&mine.authors, |id| !learning.is_open(id));
            *learning.found_mut() = found;
        }
        self
    }

    /// Whether this stored state needs this device's summary to be
    /// [`restored`](Self::restored).
    pub(super) fn follows_stored_summary(&self) -> bool {
        self.theirs_diff.is_some() || self.found_diff.is_some()
    }

    /// Whether its stored form depends on this device's summary.
    pub(super) fn follows_summary(&self) -> bool {
        self.theirs.is_some() || self.learning.is_some()
    }

    /// What to send the peer now, or `None` if there is nothing to say. `summary` is
    /// `replica`'s; `holds` is the peer's chain this device holds; `own`, this device's
    /// current chain if the peer is in the view it serves.
    pub(super) fn next(
        &self,
        peer: &MemberId,
        replica: &Replica,
        summary: &Summary,
        holds: Option<ChainId>,
        own: Option<ChainId>,
    ) -> Option<Speech> {
        let mine = summary.digest();
        let ops = self
            .theirs
            .as_ref()
            .map(|theirs| replica.missing_given(summary, theirs).unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::{AuthorSummary, Diff};
    use crate::group::{Fingerprint, OpId, Stamp};
    use crate::keys::MemberId;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Maps over a few authors, so that two maps share many of them.
    fn entries() -> impl Strategy<Value = BTreeMap<MemberId, AuthorSummary>> {
        proptest::collection::btree_map((0u8..24, 0u8..3), 0u64..3, 0..20).prop_map(|map| {
            map.into_iter()
                .map(|((author, _), count)| {
                    let entry = AuthorSummary {
                        count,
                        max: Stamp {
                            op: OpId([author; 32]),
                            ..Stamp::MIN
                        },
                        fingerprint: Fingerprint([count as u8; 32]),
                    };
                    (MemberId([author; 32]), entry)
                })
                .collect()
        })
    }

    proptest! {
        // Unit tests keep no failure file (it would land outside `proptests/`); a failure
        // prints its seed.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// A map stored as its difference from this device's summary, within any regions,
        /// reads back as it was; and one equal to the summary there is stored as nothing.
        #[test]
        fn a_difference_applied_gives_the_map_back(
            theirs in entries(),
            mine in entries(),
            odd in any::<bool>(),
        ) {
            let within = |id: &MemberId| id.0[0] % 2 == u8::from(odd);
            let diff = Diff::between(&theirs, &mine, within);
            // Exactly the entries that differ, as the stored form defines them.
            let differs = theirs
                .iter()
                .filter(|(id, e)| !within(id) || mine.get(id) != Some(e))
                .map(|(id, e)| (*id, Some(*e)));
            let lacks = mine.keys().filter(|id| within(id) && !theirs.contains_key(id)).map(|id| (*id, None));
            prop_assert_eq!(&diff, &Diff(differs.chain(lacks).collect()));
            prop_assert_eq!(diff.apply(&mine, within), theirs);
            let same: BTreeMap<_, _> = mine.iter().filter(|(id, _)| within(id)).map(|(id, e)| (*id, *e)).collect();
            prop_assert_eq!(Diff::between(&same, &mine, within), Diff::default());
        }
    }
}
