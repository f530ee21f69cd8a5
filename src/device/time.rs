//! What time passing does on a device: held operations fall due, keys past their grace are
//! erased, waiting messages are retried.

use super::{chains_write, Batch, Device, DeviceError, Refusal, Store, Tick, Waiting, Wake, Write};
use crate::crypto::EnvelopeId;
use crate::group::GroupId;

impl<S: Store> Device<S> {
    /// Lets time pass: held operations that fell due are logged, retired keys past their
    /// grace period are erased, envelopes waiting for time are retried.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn tick(&mut self, now_ms: u64) -> Result<Tick, DeviceError> {
        self.usable()?;
        let mut batch = Batch::default();
        let groups: Vec<GroupId> = self.groups.keys().copied().collect();
        for group in groups {
            let g = self.groups.get_mut(&group).expect("listed");
            let changes = g.replica.advance(now_ms);
            for sender in g.keys.erase_expired(now_ms, self.config.keyring.grace_ms) {
                batch.writes.push(chains_write(group, sender, &g.keys));
            }
            self.note_group(group, &mut batch);
            batch.changes(group, changes);
            self.republish(group, now_ms, &mut batch);
            self.rejudge(group, &mut batch);
            self.retry_pending(group, Wake::All, now_ms, &mut batch);
        }
        if self.keyring.erase_expired(now_ms) > 0 {
            batch.writes.push(Write::Keyring(self.keyring.export()));
        }
        self.expire_pending(now_ms, &mut batch);
        let events = self.commit(batch)?;
        Ok(Tick {
            events,
            // What fell due by `now_ms` was done above; what is still there waits for
            // something other than time, and asks for no call.
            next: self.next_deadline_after(now_ms),
        })
    }

    /// Gives up the messages that waited `max_pending_age_ms` (what they wait for has not
    /// come: junk claiming a member's name among them, which would otherwise hold its place
    /// for good).
    fn expire_pending(&mut self, now_ms: u64, batch: &mut Batch) {
        let max_age = self.config.max_pending_age_ms;
        let expired: Vec<EnvelopeId> = self
            .pending
            .iter()
            .filter(|(_, q)| now_ms >= q.arrived_ms.saturating_add(max_age))
            .map(|(copy, _)| *copy)
            .collect();
        for copy in expired {
            self.give_up(copy, |group, id| Refusal::Expired { group, id }, batch);
        }
    }

    /// When something waits on time next, after `now_ms` (see [`Tick::next`]): deadlines at
    /// or before it are not returned, since [`tick`](Self::tick) at `now_ms` did what fell due
    /// then (an envelope still waiting past its stamp waits for operations, not time).
    pub fn next_deadline_after(&self, now_ms: u64) -> Option<u64> {
        self.deadlines().filter(|&at| at > now_ms).min()
    }

    /// Every time something waits on, in no order.
    fn deadlines(&self) -> impl Iterator<Item = u64> + '_ {
        let drift = self.config.replica.clock.max_drift_ms;
        let held = self
            .groups
            .values()
            .flat_map(|g| g.replica.held())
            .map(move |op| op.op().timestamp.millis().saturating_sub(drift));
        let grace = self.config.keyring.grace_ms;
        let stamped_ahead = self
            .pending
            .values()
            .map(move |q| q.waiting.stamp().millis().saturating_sub(drift));
        let chains_given_up = self.pending.values().filter_map(move |q| match &q.waiting {
            Waiting::Chain(m) => Some(m.header.stamp.millis().saturating_add(grace)),
            Waiting::Envelope(_) => None,
        });
        let max_age = self.config.max_pending_age_ms;
        let expiries = self
            .pending
            .values()
            .map(move |q| q.arrived_ms.saturating_add(max_age));
        let chain_erasures = self
            .groups
            .values()
            .filter_map(move |g| g.keys.next_erasure(grace));
        held.chain(stamped_ahead)
            .chain(expiries)
            .chain(chains_given_up)
            .chain(chain_erasures)
            .chain(self.keyring.next_erasure())
    }
}
