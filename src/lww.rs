//! A generic, pure Last-Writer-Wins Element Set.
//!
//! [`LwwSet<E, S>`] holds, for every element ever inserted or removed, the latest operation
//! on it: its stamp and whether it was an insert or a remove. An element is present when
//! its latest operation is an insert. Stamps come from any totally ordered type `S`; the
//! set knows nothing of clocks, keys or groups.
//!
//! Both replication styles are offered and agree with each other:
//!
//! * **operation-based**: [`LwwSet::apply`] (and the [`insert`](LwwSet::insert) /
//!   [`remove`](LwwSet::remove) shorthands) take one [`Op`];
//! * **state-based**: [`LwwSet::merge`] takes a whole replica.
//!
//! Applying a set of conflict-free operations in any order, with any duplicates, or merging
//! replicas in any order and grouping, gives the same set.
//!
//! # Conflicts
//!
//! Stamps must be unique per operation. An insert and a remove of the same element carrying
//! the same stamp cannot be ordered, and resolving them silently would let two replicas that
//! saw them in different orders diverge. Such a pair is reported as a [`Conflict`] and the set
//! is left unchanged. (Reusing one stamp on two *different* elements is just as much a
//! producer bug, but it cannot affect this set's contents and is forgotten once either entry
//! is overwritten, so it is not detected here.)

use crate::codec::{self, DecodeError};
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// What an operation does to its element.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Make the element present.
    Insert,
    /// Make the element absent (leave a tombstone).
    Remove,
}

/// One operation: an insert or remove of `element`, stamped `stamp`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Op<E, S> {
    /// The element acted on.
    pub element: E,
    /// The operation's stamp; later stamps win.
    pub stamp: S,
    /// Insert or remove.
    pub action: Action,
}

/// The latest operation seen on one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry<S> {
    /// Stamp of the latest operation.
    pub stamp: S,
    /// What the latest operation did.
    pub action: Action,
}

impl<S> Entry<S> {
    /// Whether the element is present (its latest operation is an insert).
    pub fn is_present(&self) -> bool {
        self.action == Action::Insert
    }
}

/// An insert and a remove of one element carry the same stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict<E, S> {
    /// The element both operations act on.
    pub element: E,
    /// The stamp both operations carry.
    pub stamp: S,
}

impl<E: fmt::Debug, S: fmt::Debug> fmt::Display for Conflict<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an insert and a remove of {:?} both carry stamp {:?}",
            self.element, self.stamp
        )
    }
}

impl<E: fmt::Debug, S: fmt::Debug> std::error::Error for Conflict<E, S> {}

/// A Last-Writer-Wins Element Set over elements `E` and stamps `S`.
///
/// ```
/// use splitsafe::lww::{Action, LwwSet, Op};
///
/// let mut set = LwwSet::new();
/// set.insert("alice", 1).unwrap();
/// set.remove("alice", 3).unwrap();
/// set.insert("alice", 2).unwrap(); // arrives late: older than the remove, no effect
/// assert!(!set.contains(&"alice"));
///
/// // The same stamp on an insert and a remove of one element is refused.
/// let err = set.apply(Op { element: "alice", stamp: 3, action: Action::Insert }).unwrap_err();
/// assert_eq!(err.stamp, 3);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LwwSet<E, S> {
    entries: BTreeMap<E, Entry<S>>,
    /// Number of entries whose action is `Insert`, so `len` is O(1).
    present: usize,
}

impl<E, S> Default for LwwSet<E, S> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            present: 0,
        }
    }
}

impl<E: fmt::Debug, S: fmt::Debug> fmt::Debug for LwwSet<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

/// How one incoming entry relates to the entry already held for its element.
enum Outcome {
    /// The incoming entry is older, or the same operation again.
    Keep,
    /// The incoming entry is newer and replaces the held one.
    Replace,
    /// Same stamp, different action.
    Conflict,
}

fn compare<S: Ord>(held: &Entry<S>, incoming: &Entry<S>) -> Outcome {
    match incoming.stamp.cmp(&held.stamp) {
        std::cmp::Ordering::Greater => Outcome::Replace,
        std::cmp::Ordering::Less => Outcome::Keep,
        std::cmp::Ordering::Equal if incoming.action == held.action => Outcome::Keep,
        std::cmp::Ordering::Equal => Outcome::Conflict,
    }
}

/// The entry that decides an element's presence among operations on it: the one with the
/// greatest stamp. This is the whole Last-Writer-Wins rule. [`LwwSet`] keeps only this entry
/// per element (so [`LwwSet::apply`] and [`LwwSet::merge`] agree with it); the membership
/// engine, whose adds and removes can stop counting when an operation they depend on turns
/// out void, keeps every entry that counts and asks this for the winner.
///
/// Stamps are unique per operation: among entries with the greatest stamp, the first given
/// wins (callers whose stamps can tie must refuse the tie, as [`LwwSet`] does with
/// [`Conflict`]).
///
/// ```
/// use splitsafe::lww::{winner, Action, Entry};
///
/// let add = Entry { stamp: 1, action: Action::Insert };
/// let remove = Entry { stamp: 3, action: Action::Remove };
/// assert!(!winner([add, remove]).unwrap().is_present());
/// assert!(winner([add]).unwrap().is_present());
/// ```
pub fn winner<S: Ord>(entries: impl IntoIterator<Item = Entry<S>>) -> Option<Entry<S>> {
    entries
        .into_iter()
        .reduce(|held, incoming| match compare(&held, &incoming) {
            Outcome::Replace => incoming,
            Outcome::Keep | Outcome::Conflict => held,
        })
}

/// Below this ratio of sizes, [`LwwSet::merge`] looks entries up one by one instead of
/// walking both maps: a descent costs about log2(n) cache misses, a walk step a few ns.
const SPARSE_RATIO: usize = 32;

/// What a merge changed so far, kept apart so a conflict can undo it.
struct MergeChanges<E, S> {
    /// Entries overwritten in place, with the value they held before.
    replaced: Vec<(E, Entry<S>)>,
    /// Entries for elements this set did not hold, inserted once the merge succeeds.
    fresh: Vec<(E, Entry<S>)>,
    /// Change in the number of present elements.
    present_delta: isize,
}

impl<E, S> Default for MergeChanges<E, S> {
    fn default() -> Self {
        Self {
            replaced: Vec::new(),
            fresh: Vec::new(),
            present_delta: 0,
        }
    }
}

impl<E: Clone, S: Ord + Clone> MergeChanges<E, S> {
    /// Merges `incoming` into `held`, the entry this set holds for `element`, if any.
    fn absorb(
        &mut self,
        element: &E,
        held: Option<&mut Entry<S>>,
        incoming: &Entry<S>,
    ) -> Result<(), Conflict<E, S>> {
        let old = match held {
            None => {
                self.fresh.push((element.clone(), incoming.clone()));
                None
            }
            Some(held) => match compare(held, incoming) {
                Outcome::Keep => return Ok(()),
                Outcome::Conflict => {
                    return Err(Conflict {
                        element: element.clone(),
                        stamp: incoming.stamp.clone(),
                    })
                }
                Outcome::Replace => {
                    let old = std::mem::replace(held, incoming.clone());
                    let action = old.action;
                    self.replaced.push((element.clone(), old));
                    Some(action)
                }
            },
        };
        self.present_delta -= isize::from(old == Some(Action::Insert));
        self.present_delta += isize::from(incoming.is_present());
        Ok(())
    }
}

impl<E, S> LwwSet<E, S> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of present elements.
    pub fn len(&self) -> usize {
        self.present
    }

    /// Whether no element is present (tombstones may still be held).
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// Number of tombstones: elements whose latest operation is a remove.
    pub fn tombstone_count(&self) -> usize {
        self.entries.len() - self.present
    }

    /// Present elements, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &E> + '_ {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.is_present())
            .map(|(element, _)| element)
    }

    /// Removed elements with the stamp of their removal, in ascending element order.
    pub fn tombstones(&self) -> impl Iterator<Item = (&E, &S)> + '_ {
        self.entries
            .iter()
            .filter(|(_, entry)| !entry.is_present())
            .map(|(element, entry)| (element, &entry.stamp))
    }

    /// Every element ever seen with its latest operation, in ascending element order.
    pub fn entries(&self) -> impl Iterator<Item = (&E, &Entry<S>)> + '_ {
        self.entries.iter()
    }

    /// Keeps `present` true when an element's latest action goes from `from` to `to`.
    fn recount(&mut self, from: Option<Action>, to: Option<Action>) {
        if from == Some(Action::Insert) {
            self.present -= 1;
        }
        if to == Some(Action::Insert) {
            self.present += 1;
        }
    }
}

impl<E: Ord, S: Ord> LwwSet<E, S> {
    /// Whether `element` is present.
    pub fn contains(&self, element: &E) -> bool {
        self.entries.get(element).is_some_and(Entry::is_present)
    }

    /// The latest operation seen on `element`, if any.
    pub fn get(&self, element: &E) -> Option<&Entry<S>> {
        self.entries.get(element)
    }

    /// Applies one operation; returns whether the set changed.
    ///
    /// # Errors
    ///
    /// [`Conflict`] if the held entry for the element has the same stamp and the other
    /// action; the set is then unchanged.
    pub fn apply(&mut self, op: Op<E, S>) -> Result<bool, Conflict<E, S>> {
        let incoming = Entry {
            stamp: op.stamp,
            action: op.action,
        };
        let old = match self.entries.get_mut(&op.element) {
            None => {
                self.entries.insert(op.element, incoming);
                None
            }
            Some(held) => match compare(held, &incoming) {
                Outcome::Keep => return Ok(false),
                Outcome::Conflict => {
                    return Err(Conflict {
                        element: op.element,
                        stamp: incoming.stamp,
                    })
                }
                Outcome::Replace => Some(std::mem::replace(held, incoming).action),
            },
        };
        self.recount(old, Some(op.action));
        Ok(true)
    }

    /// Inserts `element` at `stamp`; shorthand for [`apply`](Self::apply).
    ///
    /// # Errors
    ///
    /// As for [`apply`](Self::apply).
    pub fn insert(&mut self, element: E, stamp: S) -> Result<bool, Conflict<E, S>> {
        self.apply(Op {
            element,
            stamp,
            action: Action::Insert,
        })
    }

    /// Removes `element` at `stamp`; shorthand for [`apply`](Self::apply).
    ///
    /// Removing an element never seen leaves a tombstone, so that an older insert arriving
    /// later does not bring it back.
    ///
    /// # Errors
    ///
    /// As for [`apply`](Self::apply).
    pub fn remove(&mut self, element: E, stamp: S) -> Result<bool, Conflict<E, S>> {
        self.apply(Op {
            element,
            stamp,
            action: Action::Remove,
        })
    }
}

impl<E: Ord + Clone, S: Ord + Clone> LwwSet<E, S> {
    /// Merges another replica into this one: for every element, the later of the two
    /// entries wins.
    ///
    /// When `other` is at least 1/32 of this set's size, both sorted entry maps are walked
    /// side by side in O(n + m) without a tree descent per entry; a smaller `other` is
    /// looked up entry by entry in O(m log n). Only entries that change are cloned.
    ///
    /// # Errors
    ///
    /// The first [`Conflict`] found; the set is then unchanged.
    pub fn merge(&mut self, other: &Self) -> Result<(), Conflict<E, S>> {
        let mut changes = MergeChanges::default();
        let walked = if other.entries.len() * SPARSE_RATIO < self.entries.len() {
            self.merge_by_lookup(other, &mut changes)
        } else {
            self.merge_by_walk(other, &mut changes)
        };
        if let Err(conflict) = walked {
            // Entries replaced in place are put back; new ones were never inserted.
            for (element, old) in changes.replaced {
                self.entries.insert(element, old);
            }
            return Err(conflict);
        }
        for (element, entry) in changes.fresh {
            self.entries.insert(element, entry);
        }
        self.present = self.present.wrapping_add_signed(changes.present_delta);
        Ok(())
    }

    fn merge_by_lookup(
        &mut self,
        other: &Self,
        changes: &mut MergeChanges<E, S>,
    ) -> Result<(), Conflict<E, S>> {
        for (element, incoming) in &other.entries {
            changes.absorb(element, self.entries.get_mut(element), incoming)?;
        }
        Ok(())
    }

    fn merge_by_walk(
        &mut self,
        other: &Self,
        changes: &mut MergeChanges<E, S>,
    ) -> Result<(), Conflict<E, S>> {
        let mut ours = self.entries.iter_mut().peekable();
        for (element, incoming) in &other.entries {
            while ours.next_if(|(held, _)| *held < element).is_some() {}
            let held = ours
                .next_if(|(held, _)| *held == element)
                .map(|(_, entry)| entry);
            changes.absorb(element, held, incoming)?;
        }
        Ok(())
    }

    /// The operations that rebuild this set: one per element, its latest.
    pub fn to_ops(&self) -> impl Iterator<Item = Op<E, S>> + '_ {
        self.entries.iter().map(|(element, entry)| Op {
            element: element.clone(),
            stamp: entry.stamp.clone(),
            action: entry.action,
        })
    }
}

/// Encoding: a CBOR array of `[element, stamp, present]` triples in strictly ascending
/// element order, one per element ever seen. The order makes the encoding canonical: equal
/// sets encode to equal bytes.
impl<E: Serialize, S: Serialize> Serialize for LwwSet<E, S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let mut seq = serializer.serialize_seq(Some(self.entries.len()))?;
        for (element, entry) in &self.entries {
            seq.serialize_element(&(element, &entry.stamp, entry.is_present()))?;
        }
        seq.end()
    }
}

/// Decoding refuses elements out of ascending order or repeated, so every accepted
/// encoding is the canonical one.
impl<'de, E, S> Deserialize<'de> for LwwSet<E, S>
where
    E: Deserialize<'de> + Ord,
    S: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<E, S>(PhantomData<(E, S)>);

        impl<'de, E, S> Visitor<'de> for Entries<E, S>
        where
            E: Deserialize<'de> + Ord,
            S: Deserialize<'de>,
        {
            type Value = LwwSet<E, S>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of [element, stamp, present] in ascending element order")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut set = LwwSet::new();
                let mut index = 0usize;
                while let Some((element, stamp, present)) = seq.next_element::<(E, S, bool)>()? {
                    if set
                        .entries
                        .last_key_value()
                        .is_some_and(|(last, _)| *last >= element)
                    {
                        return Err(de::Error::custom(format_args!(
                            "entry {index} is not in strictly ascending element order"
                        )));
                    }
                    let action = if present {
                        Action::Insert
                    } else {
                        Action::Remove
                    };
                    set.recount(None, Some(action));
                    set.entries.insert(element, Entry { stamp, action });
                    index += 1;
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(Entries(PhantomData))
    }
}

impl<E, S> LwwSet<E, S>
where
    E: Serialize + serde::de::DeserializeOwned + Ord,
    S: Serialize + serde::de::DeserializeOwned,
{
    /// The canonical CBOR encoding of the set.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a set from untrusted bytes, refusing input longer than `max_len`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if the bytes are too long, malformed, not in canonical order, or
    /// followed by trailing bytes.
    ///
    /// ```
    /// use splitsafe::lww::LwwSet;
    ///
    /// let mut set = LwwSet::new();
    /// set.insert(7u32, 1u64).unwrap();
    /// let bytes = set.to_cbor();
    /// assert_eq!(LwwSet::<u32, u64>::from_cbor(&bytes, 1024).unwrap(), set);
    /// assert!(LwwSet::<u32, u64>::from_cbor(&bytes[..bytes.len() - 1], 1024).is_err());
    /// ```
    pub fn from_cbor(bytes: &[u8], max_len: usize) -> Result<Self, DecodeError> {
        codec::decode(bytes, max_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_older_insert_does_not_resurrect() {
        let mut set = LwwSet::new();
        set.remove('a', 5).unwrap();
        assert_eq!(set.insert('a', 4), Ok(false));
        assert!(!set.contains(&'a'));
        assert_eq!(set.tombstones().collect::<Vec<_>>(), vec![(&'a', &5)]);
        assert_eq!((set.len(), set.tombstone_count()), (0, 1));
    }

    #[test]
    fn merge_conflict_rolls_back_everything() {
        let mut ours = LwwSet::new();
        ours.insert(1, 10).unwrap();
        ours.remove(2, 10).unwrap();
        ours.insert(9, 3).unwrap();
        let before = ours.clone();
        let mut theirs = LwwSet::new();
        theirs.insert(0, 1).unwrap(); // new element, merged before the conflict is met
        theirs.remove(1, 11).unwrap(); // newer: replaces, merged before the conflict
        theirs.insert(2, 10).unwrap(); // conflicts with our remove of 2 at 10
        let err = ours.merge(&theirs).unwrap_err();
        assert_eq!(
            err,
            Conflict {
                element: 2,
                stamp: 10
            }
        );
        assert_eq!(ours, before);
        assert_eq!(ours.len(), 2);
    }

    #[test]
    fn conflict_found_by_lookup_rolls_back_too() {
        // A delta small enough for the per-entry lookup path.
        let mut ours = LwwSet::new();
        for e in 0..100u32 {
            ours.insert(e, 10).unwrap();
        }
        let before = ours.clone();
        let mut delta = LwwSet::new();
        delta.remove(7, 11).unwrap();
        delta.remove(50, 10).unwrap();
        delta.insert(500, 1).unwrap();
        assert_eq!(
            ours.merge(&delta),
            Err(Conflict {
                element: 50,
                stamp: 10
            })
        );
        assert_eq!(ours, before);
        assert_eq!(ours.len(), 100);
    }

    #[test]
    fn decode_refuses_unsorted_and_duplicate_entries() {
        for entries in [
            vec![(2u8, 1u8, true), (1, 1, true)],
            vec![(1, 1, true), (1, 2, false)],
        ] {
            let bytes = codec::encode(&entries);
            let err = LwwSet::<u8, u8>::from_cbor(&bytes, 1024).unwrap_err();
            assert!(
                matches!(&err, DecodeError::Invalid { reason } if reason.contains("entry 1 is not in strictly ascending")),
                "{err}"
            );
        }
    }

    #[test]
    fn decode_counts_present_entries() {
        let bytes = codec::encode(&[(1u8, 1u8, true), (2, 1, false), (3, 1, true)]);
        let set = LwwSet::<u8, u8>::from_cbor(&bytes, 1024).unwrap();
        assert_eq!((set.len(), set.tombstone_count()), (2, 1));
        assert_eq!(set.to_cbor(), bytes);
    }
}
