//! Which waiting operations are off every branch a watermark pins.
//!
//! A watermark of an operation about `M` that takes effect pins `M`'s branch below the
//! operation it names. Any other operation of `M` at or below that number is off the pinned
//! branch, hence void whatever else arrives (`spec/membership.md`, "Chains"): logging it
//! would change no verdict and only cost memory, so it waits in the bounded quarantine
//! instead. That is what bounds a removed member's equivocations below its removal's
//! watermark: without it, every one of them would be logged.
//!
//! The pinned branch may not be logged yet (it can arrive in the same batch, or wait in the
//! quarantine itself), so branches are walked through the unlogged operations too; where a
//! walk breaks on a missing operation, nothing is decided and the operation is logged as
//! before (it is then void by the usual fork rule once the branch arrives).

use super::authority::Authority;
use super::op::{OpId, SignedOp};
use crate::keys::MemberId;
use std::collections::HashMap;

/// The operations held but not logged, where walks look: those waiting to be logged and
/// those in the pens. Looked up where they are held, not copied into a map of their own: a
/// batch the size of the log would make that map a sixth of the log's size.
pub(crate) trait Unlogged {
    /// The predecessor of the operation `id`, if it is held unlogged as `author`'s at `seq`.
    fn prev_of(&self, id: &OpId, author: &MemberId, seq: u64) -> Option<OpId>;
}

/// Walks of the pins of the authors whose operations wait, valid for one pin epoch of the
/// authority (a pin that starts or stops counting makes a new one).
#[derive(Default)]
pub(crate) struct Branches {
    /// Per pin, the unlogged operations of its branch from the pin down, when the walk
    /// reached the logged part of the branch (or its first operation); `None` when it broke
    /// on a missing operation or one off the author's chain: such a pin decides nothing yet.
    walks: HashMap<(u64, OpId), Option<Vec<OpId>>>,
}

impl Branches {
    /// Forgets the walks made so far: after operations were logged or pins changed, walks
    /// are made again (an operation logged since is told by the authority before the
    /// unlogged ones are looked at).
    pub(crate) fn forget_walks(&mut self) {
        self.walks.clear();
    }

    /// Whether `op`, not logged, is off every pinned branch that reaches its number (and at
    /// least one does): then it is void whatever arrives, and need not be logged.
    pub(crate) fn off_pinned(
        &mut self,
        authority: &Authority,
        unlogged: &impl Unlogged,
        op: &SignedOp,
    ) -> bool {
        let (author, seq, id) = (op.op().author, op.op().seq, op.id());
        let mut off = false;
        for (pin_seq, pin) in authority.pins_over(&author, seq) {
            let walk = self
                .walks
                .entry((pin_seq, pin))
                .or_insert_with(|| walk(authority, unlogged, author, pin_seq, pin));
            let Some(unlogged) = walk else { continue };
            match unlogged.get((pin_seq - seq) as usize) {
                Some(on) if *on == id => return false,
                // Off this branch; below its unlogged part the branch is logged, and `op`
                // is not.
                _ => off = true,
            }
        }
        off
    }
}

fn walk(
    authority: &Authority,
    unlogged: &impl Unlogged,
    author: MemberId,
    seq: u64,
    pin: OpId,
) -> Option<Vec<OpId>> {
    let (mut at, mut at_seq) = (pin, seq);
    let mut ids = Vec::new();
    loop {
        if let Some(position) = authority.position_of(&at) {
            // A watermark naming another author's operation, or one at another number, pins
            // nothing; nor does a branch that runs into one.
            return (position == (author, at_seq)).then_some(ids);
        }
        let prev = unlogged.prev_of(&at, &author, at_seq)?;
        ids.push(at);
        if at_seq == 1 {
            return Some(ids);
        }
        (at, at_seq) = (prev, at_seq - 1);
    }
}
