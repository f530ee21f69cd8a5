//! Welcomes to groups this device is not in: checked and reported as invitations, kept
//! (bounded) until the application accepts or declines them. Joining is the user's decision:
//! anyone can found a group and welcome anyone to it.

use super::{
    op_write, Batch, Device, DeviceConfig, DeviceError, Event, Group, Invited, Place, Wake,
};
use super::{Refusal, Store, Welcome, Write};
use crate::group::{Body, GroupId, Replica, SignedOp};
use crate::keys::MemberId;
use std::collections::BTreeMap;

/// A welcome kept until the application decides.
#[derive(Clone, Debug)]
pub(super) struct Offer {
    pub(super) welcome: Welcome,
    pub(super) arrived_ms: u64,
    /// Its stored size (what [`DeviceConfig::max_invitation_bytes`] counts).
    pub(super) len: usize,
    pub(super) invited: Invited,
}

/// A welcome checked as joining it would: its genesis, every operation's signature and
/// authority, and this device in the resulting view. Returns the genesis, the replica it
/// makes, and what to report.
pub(super) fn check(
    welcome: &Welcome,
    me: &MemberId,
    config: &DeviceConfig,
    now_ms: u64,
) -> Result<(SignedOp, Replica, Invited), Box<Refusal>> {
    let group = welcome.group;
    let genesis = welcome
        .ops
        .iter()
        .find(|op| op.id().0 == group.0 && matches!(op.op().body, Body::Create { .. }))
        .ok_or_else(|| Box::new(Refusal::BadWelcome(group)))?;
    let mut replica =
        Replica::join(genesis, config.replica, now_ms).map_err(|_| Refusal::BadWelcome(group))?;
    replica.record_placements();
    replica.ingest_batch(welcome.ops.clone(), now_ms);
    if !replica.is_member(me) {
        return Err(Box::new(Refusal::NotInvited(group)));
    }
    let from = replica
        .ops()
        .filter(|op| matches!(&op.op().body, Body::Add { bundle, .. } if bundle.member == *me))
        .max_by_key(|op| op.op().timestamp)
        .map_or(genesis.op().author, |op| op.op().author);
    let invited = Invited {
        group,
        from,
        founder: genesis.op().author,
        members: replica.view().members().map(|(id, _)| *id).collect(),
    };
    Ok((genesis.clone(), replica, invited))
}

impl<S: Store> Device<S> {
    /// The invitations waiting for the application's decision, oldest first.
    pub fn invitations(&self) -> impl Iterator<Item = &Invited> + '_ {
        let mut waiting: Vec<&Offer> = self.invitations.values().collect();
        waiting.sort_by_key(|i| (i.arrived_ms, i.invited.group));
        waiting.into_iter().map(|i| &i.invited)
    }

    /// Joins the group of an invitation ([`Event::Invited`]): its welcome is applied as it
    /// would have been on arrival, now. Returns what joining did ([`Event::Joined`] first,
    /// then the group's changes and any messages that waited for it).
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchInvitation`] if no invitation to `group` waits (nothing changes);
    /// store failures.
    pub fn accept(&mut self, group: GroupId, now_ms: u64) -> Result<Vec<Event>, DeviceError> {
        self.usable()?;
        let invitation = self
            .invitations
            .get(&group)
            .ok_or(DeviceError::NoSuchInvitation(group))?;
        let mut batch = Batch::default();
        match check(&invitation.welcome, &self.id(), &self.config, now_ms) {
            Ok((genesis, replica, _)) => self.join(genesis, replica, now_ms, &mut batch),
            Err(refusal) => batch.events.push(Event::Refused(*refusal)),
        }
        self.invitations.remove(&group);
        batch.writes.push(Write::DeleteInvitation(group));
        self.commit(batch)
    }

    /// Declines an invitation: its welcome is forgotten. The inviter is not told.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchInvitation`] if no invitation to `group` waits; store failures.
    pub fn decline(&mut self, group: GroupId) -> Result<(), DeviceError> {
        self.usable()?;
        if self.invitations.remove(&group).is_none() {
            return Err(DeviceError::NoSuchInvitation(group));
        }
        let batch = Batch {
            writes: vec![Write::DeleteInvitation(group)],
            ..Batch::default()
        };
        self.commit(batch).map(drop)
    }

    /// Takes a welcome: to a group held here, its operations are ingested; to another, it is
    /// checked and kept as an invitation (a newer welcome to the same group replaces the
    /// older), the oldest invitations dropped over the bounds.
    pub(super) fn welcomed(&mut self, welcome: Welcome, now_ms: u64, batch: &mut Batch) {
        let group = welcome.group;
        if self.groups.contains_key(&group) {
            self.ingest(group, welcome.ops, now_ms, batch);
            return;
        }
        let invited = match check(&welcome, &self.id(), &self.config, now_ms) {
            Ok((_, _, invited)) => invited,
            Err(refusal) => return batch.events.push(Event::Refused(*refusal)),
        };
        let bytes = super::Message::Welcome(welcome.clone()).to_bytes();
        let len = bytes.len();
        if len > self.config.max_invitation_bytes {
            return batch
                .events
                .push(Event::Refused(Refusal::InvitationDropped(group)));
        }
        self.invitations.remove(&group);
        let bound = |invitations: &BTreeMap<GroupId, Offer>| {
            let bytes: usize = invitations.values().map(|i| i.len).sum();
            invitations.len() >= self.config.max_invitations
                || bytes + len > self.config.max_invitation_bytes
        };
        while bound(&self.invitations) {
            let oldest = self
                .invitations
                .values()
                .min_by_key(|i| (i.arrived_ms, i.invited.group))
                .map(|i| i.invited.group)
                .expect("over a bound, so not empty");
            self.invitations.remove(&oldest);
            batch.writes.push(Write::DeleteInvitation(oldest));
            let dropped = Refusal::InvitationDropped(oldest);
            batch.events.push(Event::Refused(dropped));
        }
        batch.writes.push(Write::Invitation {
            group,
            arrived_ms: now_ms,
            bytes,
        });
        batch.events.push(Event::Invited(invited.clone()));
        let offer = Offer {
            welcome,
            arrived_ms: now_ms,
            len,
            invited,
        };
        self.invitations.insert(group, offer);
    }

    /// Keeps the group `replica` holds (from an accepted welcome), with its messages that
    /// waited for it.
    fn join(&mut self, genesis: SignedOp, replica: Replica, now_ms: u64, batch: &mut Batch) {
        let group = replica.group();
        batch.writes.push(op_write(group, &genesis, Place::Logged));
        self.groups.insert(group, Group::new(replica));
        batch.events.push(Event::Joined(group));
        self.note_group(group, batch);
        self.republish(group, now_ms, batch);
        self.retry_pending(group, Wake::All, now_ms, batch);
    }
}
