//! Anti-entropy: a compact summary of a replica's operations, and the delta a peer lacks.
//!
//! The summary holds, per author, the number of logged operations, the greatest stamp, and
//! an XOR of their op ids. A replica R answering the summary of a peer P sends, per author:
//!
//! 1. every operation, if P has none of that author's;
//! 2. nothing, if count and fingerprint match;
//! 3. its operations stamped after P's greatest, if its own operations up to that stamp
//!    match P's count and fingerprint (P holds a prefix of R's: the usual case after a
//!    netsplit, where each side only appended);
//! 4. nothing, if R has fewer operations than P and none stamped after P's greatest (R looks
//!    behind: P's answer brings R up to date, or reveals a hole);
//! 5. otherwise every operation of that author (one side has a hole in the middle).
//!
//! One round is three messages: A sends its summary; B answers with the delta A lacks and
//! its own summary; A ingests that and sends the delta B lacks. When neither replica has a
//! hole in any author's operations, both hold the union after one round. Otherwise, after
//! one round the replica that applied rule 4 or received rule 5 holds the union, and the
//! first two messages of a second round bring the other one level: at most five messages
//! in all. Bytes sent grow with the operations missing (whole histories only of authors
//! with holes), plus about 150 bytes per author in each summary.

use super::op::{GroupId, OpId, Stamp};
use crate::codec::{self, DecodeError};
use crate::keys::{byte_array, MemberId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

byte_array!(
    /// XOR of the op ids of a set of operations.
    Fingerprint,
    32
);

byte_array!(
    /// A summary's digest: `BLAKE3-derive-key("splitsafe v1 summary digest", CBOR of the
    /// summary)`. Two replicas with equal digests hold the same operations (of admitted
    /// authors), so a device that believes its peer holds what it holds sends this instead of
    /// the summary.
    SummaryDigest,
    32
);

impl Default for Fingerprint {
    /// The fingerprint of no operations.
    fn default() -> Self {
        Self([0; 32])
    }
}

impl Fingerprint {
    fn toggle(&mut self, id: &OpId) {
        self.0.iter_mut().zip(id.0).for_each(|(a, b)| *a ^= b);
    }
}

/// One author's operations, summarized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorSummary {
    /// How many operations of the author are logged.
    pub count: u64,
    /// The greatest stamp among them.
    pub max: Stamp,
    /// XOR of their op ids.
    pub fingerprint: Fingerprint,
}

/// A replica's summary of its logged operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The group summarized.
    pub group: GroupId,
    /// Per author.
    pub authors: BTreeMap<MemberId, AuthorSummary>,
}

impl Summary {
    /// The largest encoded summary [`Summary::from_cbor`] accepts (16 MiB: about 150,000
    /// authors).
    pub const MAX_LEN: usize = 16 << 20;

    /// The CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The summary's digest.
    pub fn digest(&self) -> SummaryDigest {
        SummaryDigest(codec::derive_key("splitsafe v1 summary digest", self))
    }

    /// Decodes a summary from untrusted bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for anything but exactly one well-formed summary within
    /// [`Summary::MAX_LEN`].
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, Self::MAX_LEN)
    }
}

/// Per-author summary of the logged operations, kept in step with the log. The log only
/// grows, so each author needs only its count, fingerprint and greatest stamp (112 bytes an
/// author); the stamps themselves are read from the log when a peer needs some of them.
/// Operations waiting in a pen (a bounded few) are folded in when a summary is made.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuthorIndex {
    authors: BTreeMap<MemberId, AuthorSummary>,
}

impl fmt::Display for AuthorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ops up to {}", self.count, self.max.timestamp)
    }
}

impl AuthorSummary {
    /// The summary of no operations.
    const EMPTY: Self = Self {
        count: 0,
        max: Stamp::MIN,
        fingerprint: Fingerprint([0; 32]),
    };

    /// Counts one more operation, which it must not count yet.
    fn add(&mut self, stamp: Stamp) {
        self.count += 1;
        self.fingerprint.toggle(&stamp.op);
        self.max = self.max.max(stamp);
    }
}

impl AuthorIndex {
    /// Counts a newly logged operation (each exactly once).
    pub(crate) fn insert(&mut self, stamp: Stamp) {
        self.authors
            .entry(stamp.author)
            .or_insert(AuthorSummary::EMPTY)
            .add(stamp);
    }

    /// The summary of the logged operations of the authors `admitted` selects (asked about
    /// in increasing order) and of the operations `waiting` (which must not be logged, and
    /// of authors it selects).
    pub(crate) fn summary(
        &self,
        group: GroupId,
        waiting: impl Iterator<Item = Stamp>,
        mut admitted: impl FnMut(&MemberId) -> bool,
    ) -> Summary {
        let mut authors: BTreeMap<MemberId, AuthorSummary> = self
            .authors
            .iter()
            .filter(|(author, _)| admitted(author))
            .map(|(author, summary)| (*author, *summary))
            .collect();
        for stamp in waiting {
            authors
                .entry(stamp.author)
                .or_insert(AuthorSummary::EMPTY)
                .add(stamp);
        }
        Summary { group, authors }
    }
}

impl Summary {
    /// Stamps of the operations a replica with this summary holds that a peer with summary
    /// `peer` may lack, per the module rules, in author then stamp order. `stamps_of` lists
    /// the operations of an author this summary counts, in stamp order.
    pub(crate) fn missing_for(
        &self,
        peer: &Summary,
        stamps_of: impl Fn(&MemberId) -> Vec<Stamp>,
    ) -> Vec<Stamp> {
        let mut out = Vec::new();
        for (author, mine) in &self.authors {
            let Some(theirs) = peer.authors.get(author) else {
                out.extend(stamps_of(author));
                continue;
            };
            if theirs.count == mine.count && theirs.fingerprint == mine.fingerprint {
                continue;
            }
            let stamps = stamps_of(author);
            // Within one author, stamps order by time then id; the peer's claimed greatest
            // stamp may name anyone, so its author is not compared.
            let after = (theirs.max.timestamp, theirs.max.op);
            let from = stamps.partition_point(|stamp| (stamp.timestamp, stamp.op) <= after);
            let suffix = &stamps[from..];
            let mut prefix = mine.fingerprint;
            suffix.iter().for_each(|stamp| prefix.toggle(&stamp.op));
            let prefix_count = mine.count - suffix.len() as u64;
            if prefix_count == theirs.count && prefix == theirs.fingerprint {
                out.extend_from_slice(suffix);
            } else if !(mine.count < theirs.count && suffix.is_empty()) {
                out.extend(stamps);
            }
        }
        out
    }
}
