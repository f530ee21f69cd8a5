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
use super::small_map::SmallMap;
use crate::clock::Timestamp;
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

#[derive(Clone, Debug, Default)]
struct AuthorLog {
    fingerprint: Fingerprint,
    /// The author's operations as stamps without the author (the map's key names it: 40
    /// bytes an operation, not 72), in stamp order. A sorted vector for the many authors
    /// with a few operations (a B-tree node per author cost 800 bytes even for one), a
    /// B-tree for the rest.
    stamps: SmallMap<(Timestamp, OpId), ()>,
}

impl AuthorLog {
    /// The author's stamps, in order.
    fn stamps<'a>(&'a self, author: &'a MemberId) -> impl Iterator<Item = Stamp> + 'a {
        self.stamps.keys().map(|&key| stamp(author, key))
    }
}

/// `author`'s stamp of the operation `(timestamp, op)`.
fn stamp(author: &MemberId, (timestamp, op): (Timestamp, OpId)) -> Stamp {
    Stamp {
        timestamp,
        author: *author,
        op,
    }
}

/// Per-author index of the log, kept in step with it.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuthorIndex {
    authors: BTreeMap<MemberId, AuthorLog>,
}

impl fmt::Display for AuthorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ops up to {}", self.count, self.max.timestamp)
    }
}

impl AuthorIndex {
    pub(crate) fn insert(&mut self, stamp: Stamp) {
        let log = self.authors.entry(stamp.author).or_default();
        if log.stamps.insert((stamp.timestamp, stamp.op), ()) {
            log.fingerprint.toggle(&stamp.op);
        }
    }

    pub(crate) fn remove(&mut self, stamp: Stamp) {
        if let Some(log) = self.authors.get_mut(&stamp.author) {
            if log.stamps.remove(&(stamp.timestamp, stamp.op)).is_some() {
                log.fingerprint.toggle(&stamp.op);
            }
            if log.stamps.is_empty() {
                self.authors.remove(&stamp.author);
            }
        }
    }

    /// The summary of the authors `admitted` selects.
    pub(crate) fn summary(&self, group: GroupId, admitted: impl Fn(&MemberId) -> bool) -> Summary {
        let authors = self
            .authors
            .iter()
            .filter(|(author, _)| admitted(author))
            .filter_map(|(author, log)| {
                let max = stamp(author, *log.stamps.last()?.0);
                Some((
                    *author,
                    AuthorSummary {
                        count: log.stamps.len() as u64,
                        max,
                        fingerprint: log.fingerprint,
                    },
                ))
            })
            .collect();
        Summary { group, authors }
    }

    /// Stamps of the operations of the authors `admitted` selects that a peer with summary
    /// `peer` may lack, per the module rules, in author then stamp order.
    pub(crate) fn missing_for(
        &self,
        peer: &Summary,
        admitted: impl Fn(&MemberId) -> bool,
    ) -> Vec<Stamp> {
        let mut out = Vec::new();
        for (author, log) in self.authors.iter().filter(|(a, _)| admitted(a)) {
            let count = log.stamps.len() as u64;
            let Some(theirs) = peer.authors.get(author) else {
                out.extend(log.stamps(author));
                continue;
            };
            if theirs.count == count && theirs.fingerprint == log.fingerprint {
                continue;
            }
            let after = (theirs.max.timestamp, theirs.max.op);
            let suffix: Vec<Stamp> = log
                .stamps
                .keys_after(&after)
                .map(|&key| stamp(author, key))
                .collect();
            let mut prefix = log.fingerprint;
            suffix.iter().for_each(|stamp| prefix.toggle(&stamp.op));
            let prefix_count = count - suffix.len() as u64;
            if prefix_count == theirs.count && prefix == theirs.fingerprint {
                out.extend(suffix);
            } else if !(count < theirs.count && suffix.is_empty()) {
                out.extend(log.stamps(author));
            }
        }
        out
    }
}
