//! Range reconciliation of summaries: how a replica finds out a peer's [`Summary`] in bytes
//! that grow with the authors on which the two differ, not with the group.
//!
//! The author id space is cut into *regions*: the ids that begin with given hex digits (a
//! [`Prefix`]). A replica asks its peer about a region; the peer answers with a
//! [`Description`] of its own authors there: the authors themselves if it holds at most
//! [`LEAF`] of them (or the region is a single id), else the count and fingerprint of each of
//! the region's 16 sub-regions. The asker compares each sub-region with its own: equal ones
//! are settled (the peer holds there what it holds), sub-regions the peer holds nothing in
//! are settled as empty, and the others are asked about next. Once no region is open, the
//! asker knows the peer's whole summary, as of the answers.
//!
//! Starting from the whole space, each round trip goes one hex digit deeper, so `d` differing
//! authors among `n` cost at most `d` regions per level, over about `log16(n / LEAF) + 1`
//! levels: O(d log n) bytes (`spec/device.md`, "Sync").

use super::sync::{AuthorSummary, Summary};
use crate::codec;
use crate::keys::{byte_array, MemberId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Sub-regions of a region: one per next hex digit.
pub const BRANCHING: usize = 16;

/// Hex digits in a member id: the deepest a prefix goes (a region of one id).
pub const MAX_DEPTH: usize = 64;

/// A region where a replica holds at most this many authors is described by its authors.
pub const LEAF: usize = 8;

/// Most regions a sync message asks about, or answers for.
pub const MAX_ASKS: usize = 1024;

/// Most authors a replica takes a peer to hold (the largest summary it will learn).
pub const MAX_AUTHORS: u64 = 150_000;

/// A region of the author id space: the member ids whose hex form begins with these digits
/// (each 0 to 15, high half of each byte first; none for the whole space).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Prefix(#[serde(with = "serde_bytes")] Vec<u8>);

impl Prefix {
    /// The whole id space.
    pub fn root() -> Self {
        Self::default()
    }

    /// The region of the ids that begin with `digits`, if each is a hex digit (0 to 15) and
    /// there are at most [`MAX_DEPTH`].
    pub fn new(digits: Vec<u8>) -> Option<Self> {
        let prefix = Self(digits);
        prefix.is_valid().then_some(prefix)
    }

    /// The hex digits.
    pub fn digits(&self) -> &[u8] {
        &self.0
    }

    /// Whether every digit is a hex digit and there are at most [`MAX_DEPTH`] (a prefix
    /// decoded from a peer's bytes may not be).
    pub fn is_valid(&self) -> bool {
        self.0.len() <= MAX_DEPTH && self.0.iter().all(|&digit| usize::from(digit) < BRANCHING)
    }

    /// The sub-region of the ids whose next digit is `digit`.
    fn child(&self, digit: u8) -> Self {
        let mut digits = self.0.clone();
        digits.push(digit);
        Self(digits)
    }

    /// Whether `id` is in the region.
    pub fn contains(&self, id: &MemberId) -> bool {
        self.0
            .iter()
            .enumerate()
            .all(|(at, &digit)| nibble(id, at) == digit)
    }

    /// The least and greatest ids in the region.
    fn bounds(&self) -> (MemberId, MemberId) {
        let (mut low, mut high) = ([0u8; 32], [0xff; 32]);
        for (at, &digit) in self.0.iter().enumerate() {
            let shift = if at.is_multiple_of(2) { 4 } else { 0 };
            low[at / 2] = (low[at / 2] & !(0xf << shift)) | (digit << shift);
            high[at / 2] = (high[at / 2] & !(0xf << shift)) | (digit << shift);
        }
        (MemberId(low), MemberId(high))
    }
}

impl fmt::Debug for Prefix {
    /// The digits in hex, `*` for the whole space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("Prefix(*)");
        }
        f.write_str("Prefix(")?;
        self.0.iter().try_for_each(|digit| write!(f, "{digit:x}"))?;
        f.write_str(")")
    }
}

/// The hex digit of `id` at position `at` (high half of each byte first).
fn nibble(id: &MemberId, at: usize) -> u8 {
    let byte = id.0[at / 2];
    if at.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0xf
    }
}

byte_array!(
    /// The first 16 bytes of `BLAKE3-derive-key("splitsafe v1 sync region", CBOR of the map
    /// of a region's authors to their summaries)`: a hash, not a sum, so that no one can
    /// make two different regions agree by choosing what they hold.
    RegionFingerprint,
    16
);

/// How many authors a replica holds in a sub-region, and their fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part(pub u64, pub RegionFingerprint);

/// One replica's account of its authors in a region, in answer to a peer's ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The region.
    pub prefix: Prefix,
    /// Every author the replica holds in the region, if `split` is empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authors: BTreeMap<MemberId, AuthorSummary>,
    /// The region's 16 sub-regions in digit order, if the replica holds more than
    /// [`LEAF`] authors there (and the region is not a single id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<Part>,
}

impl Description {
    /// Whether the description is one this crate could have written: a valid prefix; either
    /// exactly 16 parts (each a sub-region: the prefix is shorter than [`MAX_DEPTH`]) or at
    /// most [`LEAF`] authors, all in the region.
    pub fn is_well_formed(&self) -> bool {
        let parts = self.split.len();
        self.prefix.is_valid()
            && match parts {
                0 => {
                    self.authors.len() <= LEAF
                        && self.authors.keys().all(|id| self.prefix.contains(id))
                }
                BRANCHING => self.authors.is_empty() && self.prefix.0.len() < MAX_DEPTH,
                _ => false,
            }
    }

    /// How many authors the description says the replica holds in the region.
    fn count(&self) -> u64 {
        if self.split.is_empty() {
            self.authors.len() as u64
        } else {
            let counts = self.split.iter().map(|part| part.0);
            counts.fold(0, u64::saturating_add)
        }
    }
}

impl Summary {
    /// The authors in `prefix`'s region, in id order.
    fn region<'a>(
        &'a self,
        prefix: &Prefix,
    ) -> std::collections::btree_map::Range<'a, MemberId, AuthorSummary> {
        let (low, high) = prefix.bounds();
        self.authors.range(low..=high)
    }

    /// How many authors the summary holds in `prefix`'s region, and their fingerprint.
    pub fn part(&self, prefix: &Prefix) -> Part {
        let region = RegionRef(self.region(prefix));
        let count = region.0.clone().count() as u64;
        let hash = codec::derive_key("splitsafe v1 sync region", &region);
        let mut fingerprint = [0; 16];
        fingerprint.copy_from_slice(&hash[..16]);
        Part(count, RegionFingerprint(fingerprint))
    }

    /// This summary's account of `prefix`'s region, for a peer that asked about it.
    pub fn describe(&self, prefix: &Prefix) -> Description {
        let mut region = self.region(prefix);
        let few = region.by_ref().take(LEAF + 1).count() <= LEAF;
        if few || prefix.0.len() == MAX_DEPTH {
            let authors = self.region(prefix).map(|(id, s)| (*id, *s)).collect();
            return Description {
                prefix: prefix.clone(),
                authors,
                split: Vec::new(),
            };
        }
        Description {
            prefix: prefix.clone(),
            authors: BTreeMap::new(),
            split: (0..BRANCHING as u8)
                .map(|digit| self.part(&prefix.child(digit)))
                .collect(),
        }
    }
}

/// A region's authors, serialized as the map they are a range of: of definite length, as a
/// summary's `authors` map (`collect_map` over a B-tree range, whose length the iterator does
/// not know, would write an indefinite-length map).
struct RegionRef<'a>(std::collections::btree_map::Range<'a, MemberId, AuthorSummary>);

impl Serialize for RegionRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.clone().count()))?;
        for (author, summary) in self.0.clone() {
            map.serialize_entry(author, summary)?;
        }
        map.end()
    }
}

/// A region asked about, and how many authors the peer said it holds there (unknown for the
/// whole space).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Open {
    prefix: Prefix,
    count: Option<u64>,
    /// Messages heard from the peer since this region was last asked about (none if it
    /// has not been asked about yet).
    #[serde(default)]
    waited: Option<u8>,
}

/// Messages heard from a peer, after asking about a region, before asking again: the first
/// may have crossed the ask on the way (the two sent at once), the second would have
/// answered it.
const ASK_AGAIN_AFTER: u8 = 2;

impl Open {
    fn new(prefix: Prefix, count: Option<u64>) -> Self {
        Self {
            prefix,
            count,
            waited: None,
        }
    }

    fn due(&self) -> bool {
        self.waited.is_none_or(|heard| heard >= ASK_AGAIN_AFTER)
    }
}

/// Why a peer's descriptions were not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyAuthors {
    /// How many authors the peer's descriptions add up to.
    pub claimed: u64,
    /// The most this replica takes a peer to hold.
    pub max: u64,
}

/// What a replica has found out of one peer's summary so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Regions asked about and not yet described.
    open: Vec<Open>,
    /// The peer's authors in the regions settled so far.
    found: BTreeMap<MemberId, AuthorSummary>,
}

impl Default for Reconciliation {
    /// Nothing found yet: the whole id space is asked about.
    fn default() -> Self {
        Self {
            open: vec![Open::new(Prefix::root(), None)],
            found: BTreeMap::new(),
        }
    }
}

impl Reconciliation {
    /// The regions to ask the peer about next (at most [`MAX_ASKS`]).
    ///
    /// A region is asked about again only after two messages from the peer have arrived
    /// without its answer: two devices that send at the same moment would otherwise ask
    /// everything twice, and be answered twice.
    pub fn asks(&self) -> Vec<Prefix> {
        let due = self.open.iter().filter(|open| open.due()).take(MAX_ASKS);
        due.map(|open| open.prefix.clone()).collect()
    }

    /// Records that `asks` were sent to the peer.
    pub fn asked(&mut self, asks: &[Prefix]) {
        for prefix in asks {
            if let Ok(at) = self.open.binary_search_by(|open| open.prefix.cmp(prefix)) {
                self.open[at].waited = Some(0);
            }
        }
    }

    /// Records that a message from the peer arrived (before its descriptions are taken).
    pub fn heard(&mut self) {
        for open in &mut self.open {
            open.waited = open.waited.map(|heard| heard.saturating_add(1));
        }
    }

    /// Whether `id` lies in a region not settled yet (so [`found`](Self::found) has no
    /// entry for it).
    pub(crate) fn is_open(&self, id: &MemberId) -> bool {
        self.open.iter().any(|open| open.prefix.contains(id))
    }

    /// What has been found, to be replaced (a store keeps it apart).
    pub(crate) fn found_mut(&mut self) -> &mut BTreeMap<MemberId, AuthorSummary> {
        &mut self.found
    }

    /// Whether every region is settled: [`found`](Self::found) is the peer's whole summary.
    pub fn is_complete(&self) -> bool {
        self.open.is_empty()
    }

    /// The peer's authors in the regions settled so far.
    pub fn found(&self) -> &BTreeMap<MemberId, AuthorSummary> {
        &self.found
    }

    /// The peer's authors in the regions settled so far, taken out.
    pub fn into_found(self) -> BTreeMap<MemberId, AuthorSummary> {
        self.found
    }

    /// How many authors the peer said it holds, settled or still open.
    fn claimed(&self) -> u64 {
        let open: u64 = self.open.iter().filter_map(|open| open.count).sum();
        self.found.len() as u64 + open
    }

    /// Whether [`take`](Self::take) would take `descriptions`: the peer is then taken to
    /// hold at most `max` authors.
    ///
    /// # Errors
    ///
    /// [`TooManyAuthors`] if it would not.
    pub fn check(&self, descriptions: &[Description], max: u64) -> Result<(), TooManyAuthors> {
        self.taken(descriptions, max).map(drop)
    }

    /// The regions `descriptions` settle, each as its place in `open` and its description's
    /// place in `descriptions`, in ascending order of the first; if the peer is then taken to
    /// hold at most `max` authors.
    fn taken(
        &self,
        descriptions: &[Description],
        max: u64,
    ) -> Result<BTreeMap<usize, usize>, TooManyAuthors> {
        let mut taken = BTreeMap::new();
        let mut claimed = self.claimed();
        for (which, description) in descriptions.iter().enumerate() {
            let open = self
                .open
                .binary_search_by(|open| open.prefix.cmp(&description.prefix));
            let Ok(at) = open else { continue };
            if !description.is_well_formed() || taken.contains_key(&at) {
                continue;
            }
            taken.insert(at, which);
            claimed =
                (claimed - self.open[at].count.unwrap_or(0)).saturating_add(description.count());
        }
        if claimed > max {
            return Err(TooManyAuthors { claimed, max });
        }
        Ok(taken)
    }

    /// Takes the peer's `descriptions`, against this replica's own summary `mine`: each of a
    /// region still open settles it or opens its differing sub-regions. Descriptions of
    /// regions not open (answers to earlier asks, repeated), and descriptions not well
    /// formed ([`Description::is_well_formed`]), are passed over.
    ///
    /// # Errors
    ///
    /// [`TooManyAuthors`] if the peer would then be taken to hold more than `max` authors;
    /// nothing is taken.
    pub fn take(
        &mut self,
        mine: &Summary,
        descriptions: &[Description],
        max: u64,
    ) -> Result<(), TooManyAuthors> {
        let taken = self.taken(descriptions, max)?;
        // Highest place first, so that each removal leaves the places still to remove.
        for (at, which) in taken.into_iter().rev() {
            let open = self.open.swap_remove(at);
            let description = &descriptions[which];
            if description.split.is_empty() {
                self.found.extend(&description.authors);
                continue;
            }
            for (digit, theirs) in (0..BRANCHING as u8).zip(&description.split) {
                let prefix = open.prefix.child(digit);
                if theirs.0 == 0 {
                    continue;
                }
                if mine.part(&prefix) == *theirs {
                    self.found.extend(mine.region(&prefix));
                } else {
                    self.open.push(Open::new(prefix, Some(theirs.0)));
                }
            }
        }
        self.open.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{Fingerprint, GroupId, OpId, Stamp};

    /// A region's fingerprint is the hash of its map encoded as a summary's `authors` map is:
    /// of definite length (a streamed B-tree range once wrote an indefinite-length map,
    /// which an outside implementation of the spec caught).
    #[test]
    fn a_region_is_hashed_as_the_map_a_summary_writes() {
        let authors: BTreeMap<MemberId, AuthorSummary> = (0..40u8)
            .map(|i| {
                let id = MemberId(*blake3::hash(&[i]).as_bytes());
                let max = Stamp {
                    timestamp: crate::clock::Timestamp::from_raw(u64::from(i)),
                    author: id,
                    op: OpId([i; 32]),
                };
                let entry = AuthorSummary {
                    count: u64::from(i) + 1,
                    max,
                    fingerprint: Fingerprint([i; 32]),
                };
                (id, entry)
            })
            .collect();
        let summary = Summary {
            group: GroupId([1; 32]),
            authors,
        };
        let first = summary.authors.keys().next().unwrap().0[0] >> 4;
        for digits in [vec![], vec![first], vec![first ^ 1], vec![0; MAX_DEPTH]] {
            let prefix = Prefix::new(digits).unwrap();
            let region: BTreeMap<_, _> = summary
                .authors
                .iter()
                .filter(|(id, _)| prefix.contains(id))
                .collect();
            let hash = blake3::derive_key("splitsafe v1 sync region", &codec::encode(&region));
            let part = summary.part(&prefix);
            assert_eq!(part.0, region.len() as u64);
            assert_eq!(part.1 .0, hash[..16], "{prefix:?}");
        }
    }
}
