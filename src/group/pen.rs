//! A bounded holding pen for operations that cannot be logged yet, with a quota per author.
//!
//! Two bounds hold after every insertion: no author has more than `per_author` operations
//! in the pen, and the pen holds at most `limit`. When an insertion breaks one, operations
//! are dropped from an author who holds the most: the inserting author whenever it holds at
//! least as many as anyone else. So an author can only ever push out operations of an author
//! that holds strictly more than it does; a flood of operations, or of fresh identities
//! with one operation each, pushes out only the flooder's own operations once the pen is
//! full. Within an author, the operation with the greatest key goes first.

use super::op::{OpId, SignedOp};
use crate::keys::MemberId;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
pub(crate) struct Pen<K> {
    limit: usize,
    per_author: usize,
    ops: BTreeMap<K, SignedOp>,
    ids: BTreeMap<OpId, K>,
    by_author: BTreeMap<MemberId, BTreeSet<K>>,
}

impl<K: Ord + Clone> Pen<K> {
    pub(crate) fn new(limit: usize, per_author: usize) -> Self {
        Self {
            limit,
            per_author,
            ops: BTreeMap::new(),
            ids: BTreeMap::new(),
            by_author: BTreeMap::new(),
        }
    }

    pub(crate) fn contains(&self, id: &OpId) -> bool {
        self.ids.contains_key(id)
    }

    /// The operation with this id, if the pen holds it.
    pub(crate) fn get(&self, id: &OpId) -> Option<&SignedOp> {
        self.ids.get(id).and_then(|key| self.ops.get(key))
    }

    /// The operations in key order.
    pub(crate) fn ops(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.ops.values()
    }

    /// `author`'s operations in the pen, in key order.
    pub(crate) fn of_author<'a>(
        &'a self,
        author: &MemberId,
    ) -> impl Iterator<Item = &'a SignedOp> + 'a {
        self.by_author
            .get(author)
            .into_iter()
            .flatten()
            .filter_map(|key| self.ops.get(key))
    }

    /// How many operations `author` has in the pen.
    pub(crate) fn count(&self, author: &MemberId) -> usize {
        self.by_author.get(author).map_or(0, BTreeSet::len)
    }

    /// Inserts `op` under `key`, then drops operations until both bounds hold again.
    /// Returns the operations dropped (`op` itself among them if it did not stay).
    pub(crate) fn insert(&mut self, key: K, op: SignedOp) -> Vec<SignedOp> {
        let author = op.op().author;
        self.ids.insert(op.id(), key.clone());
        self.by_author
            .entry(author)
            .or_default()
            .insert(key.clone());
        self.ops.insert(key, op);
        let mut dropped = Vec::new();
        while self.count(&author) > self.per_author {
            dropped.extend(self.drop_one_of(author));
        }
        while self.ops.len() > self.limit {
            let victim = self.victim(author);
            dropped.extend(self.drop_one_of(victim));
        }
        dropped
    }

    /// The author who gives up an operation when the pen is over its limit after `inserting`
    /// added one: `inserting` itself unless another author holds strictly more.
    fn victim(&self, inserting: MemberId) -> MemberId {
        let mut victim = (self.count(&inserting), inserting);
        for (author, keys) in &self.by_author {
            if keys.len() > victim.0 {
                victim = (keys.len(), *author);
            }
        }
        victim.1
    }

    fn drop_one_of(&mut self, author: MemberId) -> Option<SignedOp> {
        let keys = self.by_author.get_mut(&author)?;
        let key = keys.pop_last();
        if keys.is_empty() {
            self.by_author.remove(&author);
        }
        let op = key.and_then(|key| self.ops.remove(&key))?;
        self.ids.remove(&op.id());
        Some(op)
    }

    /// Removes and returns, in key order, the operations `pick` selects.
    pub(crate) fn take_where(&mut self, mut pick: impl FnMut(&SignedOp) -> bool) -> Vec<SignedOp> {
        let keys: Vec<K> = self
            .ops
            .iter()
            .filter(|(_, op)| pick(op))
            .map(|(k, _)| k.clone())
            .collect();
        let mut taken = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(op) = self.ops.remove(&key) else {
                continue;
            };
            self.ids.remove(&op.id());
            let author = op.op().author;
            if let Some(keys) = self.by_author.get_mut(&author) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.by_author.remove(&author);
                }
            }
            taken.push(op);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::group::op::{Body, Op};
    use crate::keys::Identity;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A distinct op by author `author` (ops are told apart by their timestamp).
    fn op(author: &Identity, n: u64) -> SignedOp {
        Op {
            group: crate::group::GroupId([1; 32]),
            author: author.id(),
            seq: 1,
            prev: Op::NO_PREV,
            timestamp: Timestamp::from_raw(n),
            body: Body::Leave,
        }
        .sign(author)
    }

    fn counts<K: Ord + Clone>(pen: &Pen<K>) -> BTreeMap<MemberId, usize> {
        pen.by_author
            .iter()
            .map(|(author, keys)| (*author, keys.len()))
            .collect()
    }

    proptest! {
        /// After every insertion both bounds hold; `insert` says truly whether the op was
        /// kept; and an author that lost an operation to someone else's insertion still
        /// holds at least as many as the inserting author.
        #[test]
        fn bounds_hold_and_only_larger_shares_lose(
            limit in 0usize..12,
            per_author in 0usize..6,
            inserts in proptest::collection::vec((0u8..6, 0u64..1_000), 1..80),
        ) {
            let authors: Vec<Identity> = (0..6).map(|i| Identity::from_secret_bytes([i + 1; 32])).collect();
            let mut pen = Pen::new(limit, per_author);
            for (n, (who, key)) in inserts.into_iter().enumerate() {
                let op = op(&authors[usize::from(who)], n as u64);
                if pen.contains(&op.id()) {
                    continue;
                }
                let before = counts(&pen);
                let (id, author) = (op.id(), op.op().author);
                let held_before = pen.ops.len();
                let dropped = pen.insert(key * 1_000 + n as u64, op);
                let after = counts(&pen);
                prop_assert_eq!(dropped.iter().all(|d| d.id() != id), pen.contains(&id));
                prop_assert_eq!(held_before + 1 - dropped.len(), pen.ops.len());
                prop_assert!(dropped.iter().all(|d| !pen.contains(&d.id())));
                prop_assert!(pen.ops.len() <= limit);
                prop_assert!(after.values().all(|c| *c <= per_author));
                prop_assert_eq!(pen.ops.len(), pen.ids.len());
                let mine = after.get(&author).copied().unwrap_or(0);
                for (other, count) in &before {
                    let now = after.get(other).copied().unwrap_or(0);
                    if *other != author && now < *count {
                        prop_assert!(now >= mine, "{other:?} lost an op to a smaller share");
                    }
                }
            }
        }
    }
}
