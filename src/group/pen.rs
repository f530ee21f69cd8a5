//! A bounded holding pen for operations that cannot be logged yet, with a quota per author.
//!
//! Two bounds hold after every insertion: no author has more than `per_author` operations
//! in the pen, and the pen holds at most `limit`. When an insertion breaks one, operations
//! are dropped from an author who holds the most: the inserting author whenever it holds at
//! least as many as anyone else. So an author can only ever push out operations of an author
//! that holds strictly more than it does; a flood of operations, or of fresh identities
//! with one operation each, pushes out only the flooder's own operations once the pen is
//! full. Within an author, the pen's [`Evict`] order says which operation goes first.

use super::op::{OpId, SignedOp};
use crate::keys::MemberId;
use std::collections::{BTreeMap, BTreeSet};

/// Which of an author's operations a pen drops first.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Evict {
    /// The one with the greatest key.
    Greatest,
    /// The one with the least key.
    Least,
}

#[derive(Clone, Debug)]
pub(crate) struct Pen<K> {
    limit: usize,
    per_author: usize,
    evict: Evict,
    ops: BTreeMap<K, SignedOp>,
    ids: BTreeSet<OpId>,
    by_author: BTreeMap<MemberId, BTreeSet<K>>,
}

impl<K: Ord + Clone> Pen<K> {
    pub(crate) fn new(limit: usize, per_author: usize, evict: Evict) -> Self {
        Self {
            limit,
            per_author,
            evict,
            ops: BTreeMap::new(),
            ids: BTreeSet::new(),
            by_author: BTreeMap::new(),
        }
    }

    pub(crate) fn contains(&self, id: &OpId) -> bool {
        self.ids.contains(id)
    }

    /// The operations in key order.
    pub(crate) fn ops(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.ops.values()
    }

    /// How many operations `author` has in the pen.
    pub(crate) fn count(&self, author: &MemberId) -> usize {
        self.by_author.get(author).map_or(0, BTreeSet::len)
    }

    /// Inserts `op` under `key`, then drops operations until both bounds hold again.
    /// Returns whether `op` itself is still in the pen.
    pub(crate) fn insert(&mut self, key: K, op: SignedOp) -> bool {
        let author = op.op().author;
        let id = op.id();
        self.ids.insert(id);
        self.by_author
            .entry(author)
            .or_default()
            .insert(key.clone());
        self.ops.insert(key, op);
        while self.count(&author) > self.per_author {
            self.drop_one_of(author);
        }
        while self.ops.len() > self.limit {
            let victim = self.victim(author);
            self.drop_one_of(victim);
        }
        self.ids.contains(&id)
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

    fn drop_one_of(&mut self, author: MemberId) {
        let Some(keys) = self.by_author.get_mut(&author) else {
            return;
        };
        let key = match self.evict {
            Evict::Greatest => keys.pop_last(),
            Evict::Least => keys.pop_first(),
        };
        if keys.is_empty() {
            self.by_author.remove(&author);
        }
        if let Some(op) = key.and_then(|key| self.ops.remove(&key)) {
            self.ids.remove(&op.id());
        }
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
            timestamp: Timestamp::from_raw(n),
            body: Body::Remove {
                member: MemberId([2; 32]),
            },
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
            greatest in any::<bool>(),
            inserts in proptest::collection::vec((0u8..6, 0u64..1_000), 1..80),
        ) {
            let authors: Vec<Identity> = (0..6).map(|i| Identity::from_secret_bytes([i + 1; 32])).collect();
            let evict = if greatest { Evict::Greatest } else { Evict::Least };
            let mut pen = Pen::new(limit, per_author, evict);
            for (n, (who, key)) in inserts.into_iter().enumerate() {
                let op = op(&authors[usize::from(who)], n as u64);
                if pen.contains(&op.id()) {
                    continue;
                }
                let before = counts(&pen);
                let (id, author) = (op.id(), op.op().author);
                let kept = pen.insert(key * 1_000 + n as u64, op);
                let after = counts(&pen);
                prop_assert_eq!(kept, pen.contains(&id));
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
