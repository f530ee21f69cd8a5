//! What the device owes its application: deliveries kept until acknowledged, and the recent
//! messages whose senders it judges again as operations arrive.
//!
//! Delivery is at least once: a message opened is committed as seen together with its
//! delivery, so a process killed before the application stored it finds it again among the
//! unacknowledged deliveries; once acknowledged it is never delivered again (its id stays
//! seen). A sender's standing is judged from the position the message carries, by the
//! operations the reader holds; operations that arrive later (a removal made during a split)
//! can change it, so the last [`DeviceConfig::rejudge_window`](super::DeviceConfig::rejudge_window)
//! messages delivered are judged again after every change, and a change is delivered too.

use super::{Batch, Delivery, Event, Received, Rejudged, StoreError, Write};
use crate::codec;
use crate::crypto::{judge, EnvelopeId};
use crate::group::{GroupId, Replica, Standing, ViewDigest, Watermark};
use crate::keys::MemberId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A delivered message as kept to judge its sender again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Judgment {
    /// Delivery order: the oldest leaves the window first.
    order: u64,
    group: GroupId,
    sender: MemberId,
    position: Watermark,
    view: ViewDigest,
    /// The standing last delivered.
    standing: Standing,
}

#[derive(Debug, Default)]
pub(super) struct Inbox {
    deliveries: BTreeMap<EnvelopeId, Delivery>,
    judged: BTreeMap<EnvelopeId, Judgment>,
    by_order: BTreeMap<u64, EnvelopeId>,
}

fn corrupt(what: &str, e: codec::DecodeError) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl Inbox {
    /// The inbox as stored.
    pub(super) fn restore(
        deliveries: &BTreeMap<EnvelopeId, Vec<u8>>,
        judged: &BTreeMap<EnvelopeId, Vec<u8>>,
        max_len: usize,
    ) -> Result<Self, StoreError> {
        let mut inbox = Self::default();
        for (id, bytes) in deliveries {
            let delivery =
                codec::decode_stored(bytes, max_len).map_err(|e| corrupt("a delivery", e))?;
            inbox.deliveries.insert(*id, delivery);
        }
        for (id, bytes) in judged {
            let judgment: Judgment =
                codec::decode_stored(bytes, max_len).map_err(|e| corrupt("a judgment", e))?;
            inbox.by_order.insert(judgment.order, *id);
            inbox.judged.insert(*id, judgment);
        }
        Ok(inbox)
    }

    pub(super) fn unacknowledged(&self) -> impl Iterator<Item = &Delivery> + '_ {
        self.deliveries.values()
    }

    /// Records the delivery of `received`, sealed to `view`, and keeps it to be judged
    /// again (the oldest kept leaves the window of `window` messages).
    pub(super) fn deliver(
        &mut self,
        received: &Received,
        view: ViewDigest,
        window: usize,
        batch: &mut Batch,
    ) {
        let delivery = Delivery::Message(received.clone());
        batch.writes.push(delivery_write(&delivery));
        self.deliveries.insert(received.id, delivery);
        if window == 0 {
            return;
        }
        let order = self
            .by_order
            .last_key_value()
            .map_or(0, |(order, _)| order + 1);
        let judgment = Judgment {
            order,
            group: received.group,
            sender: received.sender,
            position: received.position,
            view,
            standing: received.standing,
        };
        batch.writes.push(Write::Judged {
            id: received.id,
            bytes: codec::encode(&judgment),
        });
        self.judged.insert(received.id, judgment);
        self.by_order.insert(order, received.id);
        while self.judged.len() > window {
            let (_, oldest) = self.by_order.pop_first().expect("as many as judged");
            self.judged.remove(&oldest);
            batch.writes.push(Write::DeleteJudged(oldest));
        }
    }

    /// Acknowledges the delivery of `id`: returns whether one was waiting.
    pub(super) fn ack(&mut self, id: &EnvelopeId, batch: &mut Batch) -> bool {
        let acknowledged = self.deliveries.remove(id).is_some();
        if acknowledged {
            batch.writes.push(Write::DeleteDelivery(*id));
        }
        acknowledged
    }

    /// Judges again the kept messages of `group` by `replica`; each whose standing changed
    /// is reported, and delivered (a message not yet acknowledged carries its new standing).
    pub(super) fn rejudge(&mut self, group: GroupId, replica: &Replica, batch: &mut Batch) {
        for (id, judgment) in self.judged.iter_mut().filter(|(_, j)| j.group == group) {
            let Ok(standing) = judge(replica, &judgment.sender, judgment.position, judgment.view)
            else {
                continue;
            };
            if standing == judgment.standing {
                continue;
            }
            let rejudged = Rejudged {
                group,
                id: *id,
                sender: judgment.sender,
                was: judgment.standing,
                standing,
            };
            judgment.standing = standing;
            batch.writes.push(Write::Judged {
                id: *id,
                bytes: codec::encode(&*judgment),
            });
            let delivery = match self.deliveries.remove(id) {
                Some(Delivery::Message(mut received)) => {
                    received.standing = standing;
                    Delivery::Message(received)
                }
                Some(Delivery::Rejudged(earlier)) => Delivery::Rejudged(Rejudged {
                    was: earlier.was,
                    ..rejudged
                }),
                None => Delivery::Rejudged(rejudged),
            };
            batch.writes.push(delivery_write(&delivery));
            self.deliveries.insert(*id, delivery);
            batch.events.push(Event::Rejudged(rejudged));
        }
    }
}

fn delivery_write(delivery: &Delivery) -> Write {
    Write::Delivery {
        id: delivery.id(),
        bytes: codec::encode(delivery),
    }
}
