//! What a device does to its groups: found them, add, remove, rank, leave, rotate its key,
//! set how it sends.

use super::{
    admitted, group_mut, op_write, others, Batch, Device, DeviceError, Group, Invitation, Message,
    MessageMode, Outgoing, Place, Store, Welcome, Write,
};
use crate::group::{ActionError, GroupId, Rank, Replica, SignedOp};
use crate::keys::{Identity, KeyBundle, MemberId};
use rand_core::CryptoRng;

impl<S: Store> Device<S> {
    /// Sets how this device seals messages to `group` (kept across restarts; receiving takes
    /// both modes, always).
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`]; store failures.
    pub fn set_mode(&mut self, group: GroupId, mode: MessageMode) -> Result<(), DeviceError> {
        self.usable()?;
        group_mut(&mut self.groups, group)?.mode = Some(mode);
        self.commit(Batch {
            writes: vec![Write::Mode {
                group,
                mode: mode.code(),
            }],
            ..Batch::default()
        })?;
        Ok(())
    }

    /// Founds a group with this device as its owner.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn create_group<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<GroupId, DeviceError> {
        self.usable()?;
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let (mut replica, genesis) = Replica::create(
            self.keyring.identity(),
            self.keyring.bundle(),
            nonce,
            self.config.replica,
            now_ms,
        )?;
        replica.record_placements();
        let group = replica.group();
        let mut batch = Batch {
            own_op: true,
            ..Batch::default()
        };
        batch.writes.push(op_write(group, &genesis, Place::Logged));
        batch.writes.push(Write::Clock {
            group,
            clock: replica.clock().last(),
        });
        self.groups.insert(group, Group::new(replica));
        self.commit(batch)?;
        Ok(group)
    }

    /// Adds the member whose `bundle` this is to `group` and makes its welcome.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`]; [`DeviceError::Action`] if the group refuses the add
    /// (rank, bad bundle); store failures.
    pub fn invite(
        &mut self,
        group: GroupId,
        bundle: KeyBundle,
        now_ms: u64,
    ) -> Result<Invitation, DeviceError> {
        let newcomer = bundle.member;
        let mut add = self.act(group, now_ms, |replica, identity| {
            replica.add(identity, bundle, now_ms)
        })?;
        add.to.retain(|member| *member != newcomer);
        Ok(Invitation {
            add,
            welcome: Outgoing {
                to: vec![newcomer],
                message: self.welcome(group)?,
            },
        })
    }

    /// A welcome to `group`: every operation this device has logged, for whomever the
    /// application chooses to send it to ([`invite`](Self::invite) addresses its own).
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`].
    pub fn welcome(&self, group: GroupId) -> Result<Message, DeviceError> {
        let replica = self.replica(group).ok_or(DeviceError::NoSuchGroup(group))?;
        Ok(Message::Welcome(Welcome {
            group,
            ops: replica.ops().cloned().collect(),
        }))
    }

    /// Removes `member` from `group`.
    ///
    /// # Errors
    ///
    /// As for [`invite`](Self::invite).
    pub fn remove(
        &mut self,
        group: GroupId,
        member: MemberId,
        now_ms: u64,
    ) -> Result<Outgoing, DeviceError> {
        self.act(group, now_ms, |replica, identity| {
            // Another removal would be an operation that changes nothing here.
            if member != identity.id() && !replica.is_member(&member) {
                return Err(ActionError::NotInView(member));
            }
            replica.remove(identity, member, now_ms)
        })
    }

    /// Leaves `group`.
    ///
    /// # Errors
    ///
    /// As for [`invite`](Self::invite).
    pub fn leave(&mut self, group: GroupId, now_ms: u64) -> Result<Outgoing, DeviceError> {
        self.act(group, now_ms, |replica, identity| {
            replica.leave(identity, now_ms)
        })
    }

    /// Makes `member` an admin of `group` (`Rank::Admin`) or a member again
    /// (`Rank::Member`); only the owner may.
    ///
    /// # Errors
    ///
    /// As for [`invite`](Self::invite).
    pub fn set_rank(
        &mut self,
        group: GroupId,
        member: MemberId,
        rank: Rank,
        now_ms: u64,
    ) -> Result<Outgoing, DeviceError> {
        self.act(group, now_ms, |replica, identity| match rank {
            Rank::Admin => replica.promote(identity, member, now_ms),
            _ => replica.demote(identity, member, now_ms),
        })
    }

    /// Rotates this device's encryption key and publishes the new one in every group it is
    /// a member of (one key for all: the old one is retired everywhere). Returns one
    /// operations message per group that took it, for that group's members; in no group,
    /// nothing changes.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn rotate<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Vec<Outgoing>, DeviceError> {
        self.usable()?;
        let me = self.id();
        let in_group: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.replica.is_member(&me))
            .map(|(id, _)| *id)
            .collect();
        for group in &in_group {
            self.caught_up(*group, now_ms)?;
        }
        let replicas = self
            .groups
            .iter_mut()
            .filter(|(id, _)| in_group.contains(id))
            .map(|(_, g)| &mut g.replica);
        let results = self.keyring.rotate_in_all(rng, replicas, now_ms);
        let mut batch = Batch {
            own_op: true,
            ..Batch::default()
        };
        let mut out = Vec::new();
        for (group, result) in in_group.into_iter().zip(results) {
            if let Ok((op, _)) = result {
                self.note_group(group, &mut batch);
                out.push(Outgoing {
                    to: others(&self.groups[&group].replica, me)
                        .into_iter()
                        .collect(),
                    message: Message::Operations(vec![op]),
                });
            }
        }
        batch.writes.push(Write::Keyring(self.keyring.export()));
        self.commit(batch)?;
        Ok(out)
    }

    /// Makes one operation in `group` with `action` and commits it.
    /// Refuses to sign in `group` while a member's summary, heard within
    /// [`DeviceConfig::catch_up_ms`](super::DeviceConfig::catch_up_ms), shows operations of
    /// this device's own chain that it lacks: it runs on an older copy of its store (a
    /// backup restored, a copied profile), and its next operation would re-use a sequence
    /// number, an equivocation. Sync with that peer to catch up.
    fn caught_up(&self, group: GroupId, now_ms: u64) -> Result<(), DeviceError> {
        let Some(g) = self.groups.get(&group) else {
            return Ok(());
        };
        let me = self.id();
        let since = now_ms.saturating_sub(self.config.catch_up_ms);
        let summary = g.replica.summary();
        let held = summary.authors.get(&me);
        for (peer, state) in &g.peers {
            if !admitted(&g.replica, peer) {
                continue; // only members' word counts
            }
            if let Some(theirs) = state.holds_more_of(&me, held, since) {
                return Err(DeviceError::Behind {
                    group,
                    peer: *peer,
                    held: held.map_or(0, |h| h.count),
                    claimed: theirs.count,
                });
            }
        }
        Ok(())
    }

    pub(super) fn act(
        &mut self,
        group: GroupId,
        now_ms: u64,
        action: impl FnOnce(
            &mut Replica,
            &Identity,
        )
            -> Result<(SignedOp, Vec<crate::group::Change>), crate::group::ActionError>,
    ) -> Result<Outgoing, DeviceError> {
        self.usable()?;
        self.caught_up(group, now_ms)?;
        let me = self.id();
        let g = group_mut(&mut self.groups, group)?;
        let mut to = others(&g.replica, me);
        // The caller knows what its own action changed; envelopes it may release (from a
        // member it just added, say) open at the next `receive` or `tick`, which report them.
        let (op, _) = action(&mut g.replica, self.keyring.identity())?;
        to.extend(others(&g.replica, me));
        let mut batch = Batch {
            own_op: true,
            ..Batch::default()
        };
        self.note_group(group, &mut batch);
        self.commit(batch)?;
        Ok(Outgoing {
            to: to.into_iter().collect(),
            message: Message::Operations(vec![op]),
        })
    }
}
