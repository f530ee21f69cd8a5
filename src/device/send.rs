//! What a device sends: messages sealed to a group, and sync messages to a peer.

use super::{
    group_mut, others, peer_write, Batch, ChainPost, Device, DeviceError, Message, Outgoing, Store,
    SyncMessage, Write,
};
use crate::crypto::{Payload, SealOptions};
use crate::group::GroupId;
use crate::keys::MemberId;
use rand_core::CryptoRng;

impl<S: Store> Device<S> {
    /// Seals `plaintext` to `group`'s current view, in the group's [`MessageMode`](super::MessageMode): an
    /// envelope, or a sender-key message (with the envelope handing out a new chain when
    /// the view changed since the last one, or the chain is due for replacement), addressed
    /// to the members of that view.
    ///
    /// The sending chain is stored at an index reserved ahead of use, durably before a
    /// message leaves (`spec/encryption.md`, "Storing the sending chain"): a restart resumes
    /// it (no new handoff to the whole view), and a store rolled back by a power loss resumes
    /// it past every index used, so no message key is ever used twice.
    ///
    /// # Errors
    ///
    /// [`DeviceError::Seal`] if this device is not in the view or a limit is exceeded;
    /// store failures.
    pub fn send<R: CryptoRng + ?Sized>(
        &mut self,
        group: GroupId,
        plaintext: &[u8],
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Outgoing, DeviceError> {
        self.usable()?;
        let default = self.config.messages;
        let me = self.id();
        let g = group_mut(&mut self.groups, group)?;
        let to = others(&g.replica, me).into_iter().collect();
        let mut batch = Batch::default();
        let message = if g.mode.unwrap_or(default).uses_sender_keys(g.replica.view()) {
            let sealed = g.keys.seal(
                &mut self.keyring,
                &mut g.replica,
                now_ms,
                plaintext,
                self.config.chains,
                rng,
            )?;
            if sealed.reserved {
                let state = g.keys.export_own().expect("a chain just sealed");
                batch.writes.push(Write::OwnChain { group, state });
            }
            Message::Chain(ChainPost {
                handoff: sealed.handoff,
                message: sealed.message,
            })
        } else {
            let payload = Payload::Message(plaintext.to_vec()).to_bytes();
            Message::Envelope(self.keyring.seal(
                &mut g.replica,
                now_ms,
                &payload,
                SealOptions::default(),
                rng,
            )?)
        };
        // Not recorded as seen: an envelope naming this device as sender is reported as a
        // duplicate on sight (it has no slot for its sender anyway), which saves a row per
        // message sent.
        self.note_group(group, &mut batch);
        self.commit(batch)?;
        Ok(Outgoing { to, message })
    }

    /// Every sync message due, for every group and every peer it should reach, each
    /// addressed to its peer: the group's members and its past members (a removed member learns of
    /// its removal only this way, and until it does its view and the others' differ), this
    /// device excepted. Peers with nothing to hear are skipped, so calling this whenever
    /// there is a chance to send is what keeps every group converging, and costs nothing
    /// once all are in sync.
    ///
    /// # Errors
    ///
    /// Store failures (what was said up to then is recorded).
    pub fn syncs_due(&mut self) -> Result<Vec<Outgoing>, DeviceError> {
        let me = self.id();
        let mut due = Vec::new();
        let groups: Vec<GroupId> = self.groups.keys().copied().collect();
        for group in groups {
            let replica = &self.groups[&group].replica;
            let mut peers = others(replica, me);
            peers.extend(replica.past_members().map(|(member, _)| *member));
            peers.remove(&me);
            for peer in peers {
                if let Some(message) = self.sync_message(group, peer)? {
                    due.push(Outgoing {
                        to: vec![peer],
                        message,
                    });
                }
            }
        }
        Ok(due)
    }

    /// A sync message for `peer` about `group`, or `None` if there is nothing to say (see
    /// the rule in `spec/membership.md`, "Device sync"): this device's summary and the
    /// operations the peer lacks as far as this device knows. Call it whenever there is a
    /// chance to send; over a transport that loses, duplicates and reorders, two devices
    /// converge once three messages in a row get through, and then fall silent.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`]; store failures (what was said is recorded).
    pub fn sync_message(
        &mut self,
        group: GroupId,
        peer: MemberId,
    ) -> Result<Option<Message>, DeviceError> {
        self.usable()?;
        let g = group_mut(&mut self.groups, group)?;
        let view = g.replica.view();
        let own = g
            .keys
            .own_handoff(view, &peer)
            .filter(|_| view.contains(&peer));
        let holds = g.keys.holds(&peer);
        let mine = g.replica.summary();
        let state = g.peers.entry(peer).or_default();
        let own_chain = own.map(|(chain, _)| chain);
        let Some(speech) = state.next(&peer, &g.replica, &mine, holds, own_chain) else {
            return Ok(None);
        };
        state.sent(&speech, holds);
        let write = peer_write(group, peer, state, &mine);
        let handoff = own
            .filter(|_| speech.handoff)
            .map(|(_, envelope)| envelope.clone());
        let message = SyncMessage::new(
            self.keyring.identity(),
            group,
            super::SyncContent {
                digest: speech.digest,
                asks: speech.asks,
                tells: speech.tells,
                yours: speech.yours,
                ops: speech.ops,
                holds,
                handoff,
            },
        );
        self.commit(Batch {
            writes: vec![write],
            ..Batch::default()
        })?;
        Ok(Some(Message::Sync(message)))
    }
}
