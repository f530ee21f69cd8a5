//! The authorization fold: the member view as a pure function of a set of operations.
//!
//! Operations are kept sorted by [`Stamp`] and applied in that order; each takes effect only
//! if its author is a member at that point (the genesis `Create` founds the group). Without
//! that check the fold is exactly an [`LwwSet`] fed in stamp order, which is what holds the
//! member set here.
//!
//! Every applied operation records how to undo itself. An operation newer than all others is
//! applied in O(log n). A late one (from the other side of a split) undoes the k operations
//! stamped after it, newest first, applies itself, and re-applies those k with authorization
//! checked afresh: O(k log n), with no checkpoints to store.

use super::op::{Body, SignedOp, Stamp};
use crate::keys::{EncryptionKey, KeyBundle, MemberId};
use crate::lww::{Entry, LwwSet};
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included, Unbounded};

/// What changed in the view for one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// The member joined the view.
    Added(MemberId),
    /// The member left the view (removed or left).
    Removed(MemberId),
    /// The member stayed and its encryption key changed.
    KeyRotated(MemberId),
}

/// How to undo one applied operation: the member it touched, as it was before.
#[derive(Clone, Debug)]
struct Undo {
    member: MemberId,
    entry: Option<Entry<Stamp>>,
    key: Option<KeyBundle>,
}

#[derive(Clone, Debug)]
struct Logged {
    op: SignedOp,
    /// `None` when the operation had no effect (its author was not a member).
    undo: Option<Undo>,
}

/// The state the fold has reached: members, their keys, and the membership history.
#[derive(Clone, Debug, Default)]
struct State {
    members: LwwSet<MemberId, Stamp>,
    /// The newest bundle of every member ever admitted, from applied operations only.
    keys: BTreeMap<MemberId, KeyBundle>,
    /// Applied membership operations: (member, stamp) -> present afterwards.
    history: BTreeMap<(MemberId, Stamp), bool>,
}

/// The member whose state an operation touches.
fn target(op: &SignedOp) -> MemberId {
    match &op.op().body {
        Body::Create {
            founder: bundle, ..
        }
        | Body::Add { bundle } => bundle.member,
        Body::Remove { member } => *member,
        Body::Rotate { .. } => op.op().author,
    }
}

impl State {
    fn member_view(&self, member: &MemberId) -> Option<EncryptionKey> {
        if self.members.contains(member) {
            self.keys.get(member).map(|b| b.encryption_key)
        } else {
            None
        }
    }

    fn offer_key(&mut self, bundle: &KeyBundle) {
        let held = self.keys.entry(bundle.member).or_insert(*bundle);
        if bundle.is_newer_than(held) {
            *held = *bundle;
        }
    }

    /// Applies `op`, stamped later than everything applied so far, if its author may.
    fn apply(&mut self, stamp: Stamp, op: &SignedOp) -> Option<Undo> {
        let authorized =
            matches!(op.op().body, Body::Create { .. }) || self.members.contains(&op.op().author);
        if !authorized {
            return None;
        }
        let member = target(op);
        let undo = Undo {
            member,
            entry: self.members.get(&member).cloned(),
            key: self.keys.get(&member).copied(),
        };
        // Stamps are unique per operation, so the set never reports a conflict here, and an
        // operation stamped after all applied ones always takes effect.
        match &op.op().body {
            Body::Create {
                founder: bundle, ..
            }
            | Body::Add { bundle } => {
                let _ = self.members.insert(member, stamp);
                self.offer_key(bundle);
                self.history.insert((member, stamp), true);
            }
            Body::Remove { .. } => {
                let _ = self.members.remove(member, stamp);
                self.history.insert((member, stamp), false);
            }
            Body::Rotate { bundle } => self.offer_key(bundle),
        }
        Some(undo)
    }

    fn revert(&mut self, stamp: Stamp, undo: Undo) {
        self.members.restore(undo.member, undo.entry);
        match undo.key {
            Some(bundle) => self.keys.insert(undo.member, bundle),
            None => self.keys.remove(&undo.member),
        };
        self.history.remove(&(undo.member, stamp));
    }
}

/// A sorted log of operations and the fold of it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fold {
    log: BTreeMap<Stamp, Logged>,
    state: State,
}

impl Fold {
    /// Whether the operation with this stamp is in the log.
    pub(crate) fn contains(&self, stamp: &Stamp) -> bool {
        self.log.contains_key(stamp)
    }

    /// Number of operations in the log.
    pub(crate) fn len(&self) -> usize {
        self.log.len()
    }

    /// All logged operations in stamp order.
    pub(crate) fn ops(&self) -> impl DoubleEndedIterator<Item = &SignedOp> + '_ {
        self.log.values().map(|l| &l.op)
    }

    /// The logged operation with this stamp.
    pub(crate) fn get(&self, stamp: &Stamp) -> Option<&SignedOp> {
        self.log.get(stamp).map(|l| &l.op)
    }

    /// Adds operations not yet logged and re-folds from the earliest of them; returns what
    /// changed in the view.
    pub(crate) fn insert(&mut self, ops: Vec<SignedOp>) -> Vec<Change> {
        let Some(first) = ops.iter().map(SignedOp::stamp).min() else {
            return Vec::new();
        };
        let mut before: BTreeMap<MemberId, Option<EncryptionKey>> = BTreeMap::new();
        let state = &mut self.state;
        let mut note = |state: &State, member: MemberId| {
            before
                .entry(member)
                .or_insert_with(|| state.member_view(&member));
        };

        // Undo the operations stamped after `first`, newest first.
        for (later, logged) in self.log.range_mut((Excluded(first), Unbounded)).rev() {
            if let Some(undo) = logged.undo.take() {
                note(state, undo.member);
                state.revert(*later, undo);
            }
        }
        for op in ops {
            self.log.insert(op.stamp(), Logged { op, undo: None });
        }
        // Apply from `first` on, oldest first, checking authorization afresh.
        for (stamp, logged) in self.log.range_mut(first..) {
            note(state, target(&logged.op));
            logged.undo = state.apply(*stamp, &logged.op);
        }

        before
            .into_iter()
            .filter_map(|(member, was)| match (was, state.member_view(&member)) {
                (None, Some(_)) => Some(Change::Added(member)),
                (Some(_), None) => Some(Change::Removed(member)),
                (Some(old), Some(new)) if old != new => Some(Change::KeyRotated(member)),
                _ => None,
            })
            .collect()
    }

    /// Whether `member` is present.
    pub(crate) fn is_member(&self, member: &MemberId) -> bool {
        self.state.members.contains(member)
    }

    /// Present members with their current bundles, in member order.
    pub(crate) fn members(&self) -> impl Iterator<Item = (&MemberId, &KeyBundle)> + '_ {
        self.state
            .members
            .iter()
            .filter_map(|m| self.state.keys.get(m).map(|bundle| (m, bundle)))
    }

    /// Removed members with the stamp of the operation that removed them.
    pub(crate) fn past_members(&self) -> impl Iterator<Item = (&MemberId, &Stamp)> + '_ {
        self.state.members.tombstones()
    }

    /// Whether `member` was present after every operation stamped at or before `at`.
    pub(crate) fn was_member_at(&self, member: &MemberId, at: Stamp) -> bool {
        self.state
            .history
            .range((Included((*member, Stamp::MIN)), Included((*member, at))))
            .next_back()
            .is_some_and(|(_, present)| *present)
    }

    /// The member set alone, as the LWW set the fold maintains.
    pub(crate) fn member_set(&self) -> &LwwSet<MemberId, Stamp> {
        &self.state.members
    }
}
