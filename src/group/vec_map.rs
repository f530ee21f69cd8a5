//! A map kept as a sorted vector: for the per-member collections of the authority engine,
//! which hold one or two entries for almost every member. A `BTreeMap` allocates a whole
//! node (eleven slots) for its first entry; with 100,000 members that is hundreds of
//! megabytes and a cache miss on every lookup.

/// Makes room for one more element in `vec`: exactly one slot while it holds fewer than four,
/// then the usual doubling. Per-member vectors of the engine hold one or two elements for
/// most members, all their life, and a first push allocates four slots (a quarter of a
/// kilobyte per member for bundles).
pub(crate) fn room_for_one<T>(vec: &mut Vec<T>) {
    if vec.len() == vec.capacity() && vec.len() < 4 {
        vec.reserve_exact(1);
    }
}

/// A map from `K` to `V`, sorted by key, with O(n) insertion: for small n only.
#[derive(Clone, Debug)]
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// Inserts or replaces the value under `key`.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => {
                room_for_one(&mut self.0);
                self.0.insert(i, (key, value));
            }
        }
    }

    /// Removes and returns the value under `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.0.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        Some(self.0.remove(i).1)
    }

    /// The value under `key`, to change it.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.0.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        Some(&mut self.0[i].1)
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The values in key order.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.0.iter().map(|(_, v)| v)
    }

    /// The entry with the greatest key.
    pub(crate) fn last(&self) -> Option<(&K, &V)> {
        self.0.last().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Every operation agrees with a `BTreeMap` fed the same calls.
        #[test]
        fn behaves_like_a_btree_map(calls in proptest::collection::vec((0u8..3, 0u8..16, any::<u8>()), 0..64)) {
            let (mut ours, mut reference) = (VecMap::default(), BTreeMap::new());
            for (call, key, value) in calls {
                match call {
                    0 => { ours.insert(key, value); reference.insert(key, value); }
                    1 => prop_assert_eq!(ours.remove(&key), reference.remove(&key)),
                    _ => {
                        if let Some(v) = ours.get_mut(&key) { *v = v.wrapping_add(1); }
                        if let Some(v) = reference.get_mut(&key) { *v = v.wrapping_add(1); }
                    }
                }
                prop_assert!(ours.iter().eq(reference.iter()));
                prop_assert_eq!(ours.last(), reference.last_key_value());
            }
        }
    }
}
