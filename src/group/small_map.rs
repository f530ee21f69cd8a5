//! A map kept as a sorted vector while it is small, and as a B-tree once it is not: for the
//! per-member collections of the authority engine, which hold one or two entries for almost
//! every member. A `BTreeMap` allocates a whole node (eleven slots) for its first entry; with
//! 100,000 members that is hundreds of megabytes and a cache miss on every lookup. A vector
//! alone would let one member make every insertion cost O(n) (a member's bundles grow with
//! each rotation it signs, in any order it chooses): past [`LARGE`] entries the map is a
//! B-tree.

use std::collections::BTreeMap;

/// Makes room for one more element in `vec`: exactly one slot while it holds fewer than four,
/// then the usual doubling. Per-member vectors of the engine hold one or two elements for
/// most members, all their life, and a first push allocates four slots (a quarter of a
/// kilobyte per member for bundles).
pub(crate) fn room_for_one<T>(vec: &mut Vec<T>) {
    if vec.len() == vec.capacity() && vec.len() < 4 {
        vec.reserve_exact(1);
    }
}

/// Entries past which a [`SmallMap`] is a B-tree.
pub(crate) const LARGE: usize = 16;

/// A map from `K` to `V`, in key order: a sorted vector up to [`LARGE`] entries, a
/// `BTreeMap` beyond.
#[derive(Clone, Debug)]
pub(crate) enum SmallMap<K, V> {
    /// Sorted by key.
    Small(Vec<(K, V)>),
    /// Never shrinks back: a member that once held many entries may again. Boxed, so that
    /// the map is the size of a vector (24 bytes, not 32): the vector's capacity has room
    /// for the variant's tag, and the engine keeps four of these per member.
    #[allow(
        clippy::box_collection,
        reason = "the box makes the enum as small as its other variant"
    )]
    Large(Box<BTreeMap<K, V>>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// Inserts or replaces the value under `key`; whether the key is new.
    pub(crate) fn insert(&mut self, key: K, value: V) -> bool {
        let entries = match self {
            Self::Large(map) => return map.insert(key, value).is_none(),
            Self::Small(entries) => entries,
        };
        match entries.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => {
                entries[i].1 = value;
                return false;
            }
            Err(_) if entries.len() >= LARGE => {
                let mut map: BTreeMap<K, V> = std::mem::take(entries).into_iter().collect();
                map.insert(key, value);
                *self = Self::Large(Box::new(map));
            }
            Err(i) => {
                room_for_one(entries);
                entries.insert(i, (key, value));
            }
        }
        true
    }

    /// The keys from `from` up, in order.
    pub(crate) fn keys_from<'a>(&'a self, from: &K) -> impl Iterator<Item = &'a K> + 'a {
        let (small, large) = match self {
            Self::Small(entries) => {
                let start = entries.partition_point(|(k, _)| k < from);
                (Some(entries[start..].iter().map(|(k, _)| k)), None)
            }
            Self::Large(map) => (None, Some(map.range(from..).map(|(k, _)| k))),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        match self {
            Self::Small(entries) => {
                let i = entries.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                Some(&entries[i].1)
            }
            Self::Large(map) => map.get(key),
        }
    }

    /// Removes and returns the value under `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            Self::Small(entries) => {
                let i = entries.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                Some(entries.remove(i).1)
            }
            Self::Large(map) => map.remove(key),
        }
    }

    /// The value under `key`, to change it.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self {
            Self::Small(entries) => {
                let i = entries.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                Some(&mut entries[i].1)
            }
            Self::Large(map) => map.get_mut(key),
        }
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        let (small, large) = match self {
            Self::Small(entries) => (Some(entries.iter().map(|(k, v)| (k, v))), None),
            Self::Large(map) => (None, Some(map.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    /// The values in key order.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// The entry with the greatest key.
    pub(crate) fn last(&self) -> Option<(&K, &V)> {
        self.iter().next_back()
    }
}

#[cfg(test)]
mod tests {
    use super::SmallMap;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn is_the_size_of_a_vector() {
        assert_eq!(
            std::mem::size_of::<SmallMap<u64, [u8; 32]>>(),
            std::mem::size_of::<Vec<(u64, [u8; 32])>>()
        );
    }

    proptest! {
        /// Every operation agrees with a `BTreeMap` fed the same calls, below and past the
        /// size at which the map turns into a B-tree.
        #[test]
        fn behaves_like_a_btree_map(calls in proptest::collection::vec((0u8..3, 0u8..40, any::<u8>()), 0..96)) {
            let (mut ours, mut reference) = (SmallMap::default(), BTreeMap::new());
            for (call, key, value) in calls {
                match call {
                    0 => prop_assert_eq!(ours.insert(key, value), reference.insert(key, value).is_none()),
                    1 => prop_assert_eq!(ours.remove(&key), reference.remove(&key)),
                    _ => {
                        if let Some(v) = ours.get_mut(&key) { *v = v.wrapping_add(1); }
                        if let Some(v) = reference.get_mut(&key) { *v = v.wrapping_add(1); }
                    }
                }
                prop_assert!(ours.iter().eq(reference.iter()));
                prop_assert_eq!(ours.last(), reference.last_key_value());
                let from: Vec<_> = reference.range(key..).map(|(k, _)| k).collect();
                prop_assert_eq!(ours.keys_from(&key).collect::<Vec<_>>(), from);
                prop_assert_eq!(ours.get(&key), reference.get(&key));
            }
        }
    }
}
