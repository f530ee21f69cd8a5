//! What devices send each other: operations, envelopes, bundles, welcomes and sync messages,
//! as CBOR bytes or as armored text (one block per message).

use crate::codec::{self, DecodeError};
use crate::crypto::{ChainId, ChainMessage, Envelope, Limits};
use crate::group::{AuthorSummary, Description, GroupId, Prefix, SignedOp, SummaryDigest};
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

/// One device's side of a sync: the digest of its summary of a group, the regions of the
/// receiver's summary it asks about, its answers to the receiver's asks, and the operations
/// it believes the receiver lacks, signed by the sending member so that no one else can tell
/// a device what its peer holds. Absent optional fields are left out of the encoding, so
/// that the message two devices in sync exchange is small at any group size, and one
/// between devices that differ grows with the differences (`spec/device.md`, "Sync").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage {
    /// The group.
    pub group: GroupId,
    /// The sending member.
    pub from: MemberId,
    /// The digest of the sender's summary.
    pub digest: SummaryDigest,
    /// Regions of the receiver's summary the sender asks about (see
    /// [`Reconciliation`](crate::group::Reconciliation)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asks: Vec<Prefix>,
    /// The sender's descriptions of its own summary, in answer to the receiver's last asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tells: Vec<Description>,
    /// What the sender holds of the receiver's own operations, in any message that says
    /// more than its digest: a device running on an older copy of its store learns at once
    /// that it is behind, before it signs again (see
    /// [`DeviceError::Behind`](super::DeviceError::Behind)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yours: Option<AuthorSummary>,
    /// Operations the sender believes the receiver lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<SignedOp>,
    /// The receiver's latest chain the sender holds (sender-key mode): tells the receiver
    /// whether to hand its chain over again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<ChainId>,
    /// The envelope handing out the sender's current chain, if the receiver said it lacks
    /// it. It authenticates itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Envelope>,
    /// The sender's signature over `"splitsafe/v1/sync\0" || BLAKE3(CBOR of group, from,
    /// digest, asks, tells, yours and holds)` (derive-key context `"splitsafe v1 sync message
    /// v3"`). The operations and the handoff need no cover: each authenticates its author.
    pub signature: SignatureBytes,
}

/// What a sync message says, before it is signed (see [`SyncMessage`] for each field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncContent {
    /// The digest of the sender's summary.
    pub digest: SummaryDigest,
    /// Regions of the receiver's summary asked about.
    pub asks: Vec<Prefix>,
    /// Descriptions of the sender's summary.
    pub tells: Vec<Description>,
    /// What the sender holds of the receiver's own operations.
    pub yours: Option<AuthorSummary>,
    /// Operations the receiver may lack.
    pub ops: Vec<SignedOp>,
    /// The receiver's latest chain the sender holds.
    pub holds: Option<ChainId>,
    /// The envelope handing out the sender's current chain.
    pub handoff: Option<Envelope>,
}

#[derive(Serialize)]
struct SyncFields<'a> {
    group: &'a GroupId,
    from: &'a MemberId,
    digest: &'a SummaryDigest,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    asks: &'a [Prefix],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tells: &'a [Description],
    #[serde(skip_serializing_if = "Option::is_none")]
    yours: &'a Option<AuthorSummary>,
    holds: &'a Option<ChainId>,
}

impl SyncMessage {
    /// The bytes the signature covers.
    fn signed_bytes(&self) -> Vec<u8> {
        let fields = SyncFields {
            group: &self.group,
            from: &self.from,
            digest: &self.digest,
            asks: &self.asks,
            tells: &self.tells,
            yours: &self.yours,
            holds: &self.holds,
        };
        let mut bytes = b"splitsafe/v1/sync\0".to_vec();
        bytes.extend_from_slice(&codec::derive_key("splitsafe v1 sync message v3", &fields));
        bytes
    }

    /// A sync message saying `content`, signed by `identity` (devices make theirs with
    /// [`Device::sync_message`](super::Device::sync_message); anyone can sign one, so a
    /// receiver bounds what a sender it has not seen admitted can make it keep).
    pub fn new(identity: &Identity, group: GroupId, content: SyncContent) -> Self {
        let mut message = Self {
            group,
            from: identity.id(),
            digest: content.digest,
            asks: content.asks,
            tells: content.tells,
            yours: content.yours,
            ops: content.ops,
            holds: content.holds,
            handoff: content.handoff,
            signature: SignatureBytes([0; 64]),
        };
        message.signature = identity.sign(message.signed_bytes()).signature;
        message
    }

    /// Whether the signature is the sender's, by the crate's one Ed25519 rule.
    pub fn verify(&self) -> bool {
        let signed = SignedMessage {
            signer: self.from,
            bytes: self.signed_bytes(),
            signature: self.signature,
        };
        signed.verify().is_ok()
    }

    /// Whether what it asks and tells is well formed and within bounds: at most
    /// [`MAX_ASKS`](crate::group::MAX_ASKS) valid prefixes asked about, and at most as many
    /// well-formed descriptions.
    pub fn is_well_formed(&self) -> bool {
        use crate::group::MAX_ASKS;
        self.asks.len() <= MAX_ASKS
            && self.tells.len() <= MAX_ASKS
            && self.asks.iter().all(Prefix::is_valid)
            && self.tells.iter().all(Description::is_well_formed)
    }
}

/// A sender-key message as it travels: the message, and the envelope handing out its chain
/// if it is the first of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPost {
    /// The envelope handing out the chain (sealed to the sender's view), if this message
    /// started the chain.
    pub handoff: Option<Envelope>,
    /// The message.
    pub message: ChainMessage,
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
    /// A sender-key message.
    Chain(ChainPost),
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
            Self::Chain(post) => codec::encode(post),
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
            Self::Chain(_) => ArmorKind::Chain,
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
            ArmorKind::Chain => Self::Chain(codec::decode(body, max_len)?),
        };
        message.validate(limits)?;
        Ok(message)
    }

    fn validate(&self, limits: Limits) -> Result<(), DecodeError> {
        let envelope = |envelope: &Envelope| {
            envelope.validate(limits).map_err(|e| DecodeError::Invalid {
                reason: e.to_string(),
            })
        };
        match self {
            Self::Envelope(e)
            | Self::Sync(SyncMessage {
                handoff: Some(e), ..
            }) => envelope(e),
            Self::Chain(post) => {
                post.handoff.as_ref().map_or(Ok(()), envelope)?;
                post.message.check_len(limits.max_payload)
            }
            _ => Ok(()),
        }
    }
}

/// A message with its addressees: everything a device makes for others to read comes so,
/// and the application sends `message` to each member in `to`, and to no one else it need
/// tell (anyone else may get it too: it reveals nothing to a reader without a key).
///
/// Who a message is for, by kind (`spec/device.md`, "Addressing"):
/// - a sealed message: the view it was sealed to, this device excepted;
/// - an operation: the members of the view before it and after it, this device excepted (a
///   removed member learns of its removal, a leaving one's peers learn it left); an add
///   leaves out the newcomer, whose welcome holds it;
/// - a welcome: the newcomer;
/// - a sync message: the one peer it answers.
///
/// It dereferences to its [`Message`], so `outgoing.to_bytes()` and `outgoing.armored()`
/// are the message's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The members it is for, in id order, never this device.
    pub to: Vec<MemberId>,
    /// The message.
    pub message: Message,
}

impl std::ops::Deref for Outgoing {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}
