//! `crdts::Map<E, LWWReg<bool, S>>` as an independent oracle for `LwwSet`.
//!
//! crdts' `Map` requires its values to implement `ResetRemove`, which `LWWReg` does not. The
//! wrapper's `reset_remove` does nothing, which is exact here: removal from the set is a
//! last-writer-wins write of `false`, never a `Map::rm`, so no causal reset ever applies.

use crdts::{lwwreg, CmRDT, CvRDT, LWWReg, ResetRemove, VClock};

/// An `LWWReg<bool, S>` usable as a `crdts::Map` value; `val` is "present".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceReg<S>(pub LWWReg<bool, S>);

/// The oracle: a map from element to presence register, written by one actor.
pub type OracleMap<E, S> = crdts::Map<E, PresenceReg<S>, u8>;

impl<A: Ord, S> ResetRemove<A> for PresenceReg<S> {
    fn reset_remove(&mut self, _clock: &VClock<A>) {}
}

impl<S: Ord> CmRDT for PresenceReg<S> {
    type Op = LWWReg<bool, S>;
    type Validation = lwwreg::Validation;

    fn validate_op(&self, op: &Self::Op) -> Result<(), Self::Validation> {
        self.0.validate_op(op)
    }

    fn apply(&mut self, op: Self::Op) {
        self.0.apply(op);
    }
}

impl<S: Ord> CvRDT for PresenceReg<S> {
    type Validation = lwwreg::Validation;

    fn validate_merge(&self, other: &Self) -> Result<(), Self::Validation> {
        self.0.validate_merge(&other.0)
    }

    fn merge(&mut self, other: Self) {
        self.0.merge(other.0);
    }
}

/// The map operation that writes `present` at `marker` for `element`, issued by `actor`.
pub fn write<E: Ord + Clone + std::fmt::Debug, S: Ord + Clone + Default + std::fmt::Debug>(
    map: &OracleMap<E, S>,
    actor: u8,
    element: E,
    present: bool,
    marker: S,
) -> crdts::map::Op<E, PresenceReg<S>, u8> {
    let ctx = map.read_ctx().derive_add_ctx(actor);
    map.update(element, ctx, |_, _| LWWReg {
        val: present,
        marker,
    })
}
