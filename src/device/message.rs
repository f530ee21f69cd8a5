//! What devices send each other: operations, envelopes, bundles, welcomes and sync messages,
//! as CBOR bytes or as armored text (one block per message).

use crate::codec::{self, DecodeError};
use crate::crypto::{Envelope, Limits};
use crate::group::{GroupId, SignedOp, Summary};
use crate::keys::{Identity, KeyBundle, MemberId, SignatureBytes, SignedMessage};
use crate::wire::{self, ArmorKind};
use serde::{Deserialize, Serialize};

/// Everything a newcomer needs to join a group and check it: the inviter's logged
/// operations, the genesis among them. Each operation is signed by its author, so a welcome
/// needs no signature of its own; the newcomer's replica verifies them all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The group: the id of its genesis.
    pub group: GroupId,
    /// The operations, in the inviter's stamp order.
    pub ops: Vec<SignedOp>,
}

/// One device's side of a sync: its summary of a group and the operations it believes the
/// receiver lacks, signed by the sending member so that no one else can tell a device what
/// its peer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage {
    /// The group.
    pub group: GroupId,
    /// The sending member.
    pub from: MemberId,
    /// What the sender holds.
    pub summary: Summary,
    /// Operations the sender believes the receiver lacks.
    pub ops: Vec<SignedOp>,
    /// The sender's signature over `"splitsafe/v1/sync\0" || BLAKE3(CBOR of group, from and
    /// summary)` (derive-key context `"splitsafe v1 sync message"`). The operations need no
    /// cover: each is signed by its author.
    pub signature: SignatureBytes,
}

#[derive(Serialize)]
struct SyncFields<'a> {
    group: &'a GroupId,
    from: &'a MemberId,
    summary: &'a Summary,
}

impl SyncMessage {
    fn signed_bytes(group: &GroupId, from: &MemberId, summary: &Summary) -> Vec<u8> {
        let fields = codec::encode(&SyncFields {
            group,
            from,
            summary,
        });
        let mut bytes = b"splitsafe/v1/sync\0".to_vec();
        bytes.extend_from_slice(&blake3::derive_key("splitsafe v1 sync message", &fields));
        bytes
    }

    /// A sync message signed by `identity`.
    pub(crate) fn new(
        identity: &Identity,
        group: GroupId,
        summary: Summary,
        ops: Vec<SignedOp>,
    ) -> Self {
        let from = identity.id();
        let signed = identity.sign(Self::signed_bytes(&group, &from, &summary));
        Self {
            group,
            from,
            summary,
            ops,
            signature: signed.signature,
        }
    }

    /// Whether the signature is the sender's, by the crate's one Ed25519 rule.
    pub fn verify(&self) -> bool {
        SignedMessage {
            signer: self.from,
            bytes: Self::signed_bytes(&self.group, &self.from, &self.summary),
            signature: self.signature,
        }
        .verify()
        .is_ok()
    }
}

/// One message between devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Membership operations to apply (of one group or several).
    Operations(Vec<SignedOp>),
    /// A sealed message.
    Envelope(Envelope),
    /// A newcomer's key bundle, for the member who will add it.
    Bundle(KeyBundle),
    /// An invitation to join a group.
    Welcome(Welcome),
    /// One side of a sync.
    Sync(SyncMessage),
}

impl Message {
    /// The CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes one message from untrusted bytes of at most `max_len`, envelopes within
    /// `limits`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for anything but one well-formed message.
    pub fn from_bytes(bytes: &[u8], max_len: usize, limits: Limits) -> Result<Self, DecodeError> {
        let message: Self = codec::decode(bytes, max_len)?;
        message.validate(limits)?;
        Ok(message)
    }

    /// The message as one armored block of its kind (the body is the CBOR of what the
    /// variant holds).
    pub fn armored(&self) -> String {
        let body = match self {
            Self::Operations(ops) => codec::encode(ops),
            Self::Envelope(envelope) => envelope.to_cbor(),
            Self::Bundle(bundle) => codec::encode(bundle),
            Self::Welcome(welcome) => codec::encode(welcome),
            Self::Sync(sync) => codec::encode(sync),
        };
        wire::armor(self.kind(), &body)
    }

    /// The armor kind of this message.
    pub fn kind(&self) -> ArmorKind {
        match self {
            Self::Operations(_) => ArmorKind::Operations,
            Self::Envelope(_) => ArmorKind::Envelope,
            Self::Bundle(_) => ArmorKind::Bundle,
            Self::Welcome(_) => ArmorKind::Welcome,
            Self::Sync(_) => ArmorKind::Sync,
        }
    }

    /// The message an armored block of `kind` holds.
    pub(crate) fn from_block(
        kind: ArmorKind,
        body: &[u8],
        max_len: usize,
        limits: Limits,
    ) -> Result<Self, DecodeError> {
        let message = match kind {
            ArmorKind::Operations => Self::Operations(codec::decode(body, max_len)?),
            ArmorKind::Envelope => Self::Envelope(codec::decode(body, max_len)?),
            ArmorKind::Bundle => Self::Bundle(codec::decode(body, max_len)?),
            ArmorKind::Welcome => Self::Welcome(codec::decode(body, max_len)?),
            ArmorKind::Sync => Self::Sync(codec::decode(body, max_len)?),
        };
        message.validate(limits)?;
        Ok(message)
    }

    fn validate(&self, limits: Limits) -> Result<(), DecodeError> {
        match self {
            Self::Envelope(envelope) => {
                envelope.validate(limits).map_err(|e| DecodeError::Invalid {
                    reason: e.to_string(),
                })
            }
            _ => Ok(()),
        }
    }
}
