//! Signed membership operations and their fixed, domain-separated byte layout.

use crate::clock::Timestamp;
use crate::codec::{self, DecodeError};
use crate::keys::{
    byte_array, Identity, KeyBundle, KeyError, MemberId, SignatureBytes, SignedMessage,
};
use serde::{Deserialize, Serialize};
use std::fmt;

byte_array!(
    /// A group's identity: the [`OpId`] of its genesis `Create` operation.
    GroupId,
    32
);
byte_array!(
    /// An operation's identity: the BLAKE3 hash (derive-key mode, context
    /// `"splitsafe v2 op id"`) of its signed bytes.
    OpId,
    32
);

/// The largest encoded operation [`SignedOp::from_cbor`] accepts. An `Add`, the largest
/// operation, encodes to under 600 bytes.
pub const MAX_OP_LEN: usize = 1024;

/// A member's standing in the group: authority flows strictly downward, from the owner (the
/// founder, whom no one can remove or demote) to admins (granted and revoked by the owner
/// alone) to members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rank {
    /// May leave, rotate its key and send; no authority over anyone.
    Member,
    /// May also add and remove members who have never been admins.
    Admin,
    /// The founder: may add, remove, promote and demote anyone else; cannot leave.
    Owner,
}

impl Rank {
    /// Its byte in signed bytes and digests: 0 member, 1 admin, 2 owner.
    pub const fn tag(self) -> u8 {
        match self {
            Self::Member => 0,
            Self::Admin => 1,
            Self::Owner => 2,
        }
    }

    /// The rank whose [`tag`](Self::tag) is `tag`.
    pub(crate) const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Self::Member),
            1 => Some(Self::Admin),
            2 => Some(Self::Owner),
            _ => None,
        }
    }
}

/// What the author of a remove, add or rank change had seen of its subject's own chain:
/// the subject's highest sequence number it had logged, and that operation's id. The
/// subject's operations above it are the ones the author's decision did not see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Watermark {
    /// The subject's sequence number; 0 if the author had seen none of its operations.
    pub seq: u64,
    /// The id of the subject's operation at `seq`; all zeros when `seq` is 0.
    pub op: OpId,
}

impl Watermark {
    /// Nothing seen: the watermark of an add of someone new.
    pub const NONE: Self = Self {
        seq: 0,
        op: OpId([0; 32]),
    };

    pub(crate) fn is_well_formed(&self) -> bool {
        (self.seq == 0) == (self.op == Self::NONE.op)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.op.0);
    }
}

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// The genesis: founds the group with its author as owner and only member.
    Create {
        /// Makes two groups founded by one member at one time distinct.
        #[serde(with = "serde_bytes")]
        nonce: [u8; 16],
        /// The founder's bundle; the founder must be the author.
        founder: KeyBundle,
    },
    /// Adds (or re-adds) the bundle's member.
    Add {
        /// The new member's self-signed bundle.
        bundle: KeyBundle,
        /// What the author had seen of the member's chain (for a re-add).
        watermark: Watermark,
    },
    /// Removes another member; its operations above the watermark are void.
    Remove {
        /// The member removed.
        member: MemberId,
        /// What the author had seen of the member's chain.
        watermark: Watermark,
    },
    /// The author leaves; its own later operations are void.
    Leave,
    /// Publishes the author's own new encryption key.
    Rotate {
        /// The author's new self-signed bundle.
        bundle: KeyBundle,
    },
    /// The owner grants or revokes admin rank.
    Rank {
        /// Whose rank.
        member: MemberId,
        /// [`Rank::Admin`] (promote) or [`Rank::Member`] (demote).
        rank: Rank,
        /// What the owner had seen of the member's chain: its operations above it hold the
        /// new rank.
        watermark: Watermark,
    },
}

impl Body {
    fn tag(&self) -> u8 {
        match self {
            Self::Create { .. } => 0,
            Self::Add { .. } => 1,
            Self::Remove { .. } => 2,
            Self::Rotate { .. } => 3,
            Self::Leave => 4,
            Self::Rank { .. } => 5,
        }
    }

    /// The bundle this operation carries, if any.
    pub fn bundle(&self) -> Option<&KeyBundle> {
        match self {
            Self::Create {
                founder: bundle, ..
            }
            | Self::Add { bundle, .. }
            | Self::Rotate { bundle } => Some(bundle),
            Self::Remove { .. } | Self::Leave | Self::Rank { .. } => None,
        }
    }

    /// What the operation does, as a verb phrase for messages ("add", "remove", ...).
    pub fn action(&self) -> &'static str {
        match self {
            Self::Create { .. } => "found",
            Self::Add { .. } => "add",
            Self::Remove { .. } => "remove",
            Self::Rank { .. } => "change the rank of",
            Self::Leave => "leave",
            Self::Rotate { .. } => "rotate",
        }
    }

    /// The other member this operation is about (added, removed or ranked), with the
    /// author's watermark of it.
    pub fn subject(&self) -> Option<(MemberId, Watermark)> {
        match self {
            Self::Add { bundle, watermark } => Some((bundle.member, *watermark)),
            Self::Remove { member, watermark }
            | Self::Rank {
                member, watermark, ..
            } => Some((*member, *watermark)),
            Self::Create { .. } | Self::Leave | Self::Rotate { .. } => None,
        }
    }
}

/// An unsigned operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Op {
    /// The group; all zeros in a `Create`, whose own id becomes the group's.
    pub group: GroupId,
    /// Who signs it.
    pub author: MemberId,
    /// The author's sequence number in this group: 1 for its first operation, then one more
    /// for each next one.
    pub seq: u64,
    /// The id of the author's operation at `seq - 1`; all zeros when `seq` is 1.
    pub prev: OpId,
    /// The author's hybrid-logical-clock stamp.
    pub timestamp: Timestamp,
    /// What it does.
    pub body: Body,
}

/// Why an operation is structurally unacceptable, whatever its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidOp {
    /// A `Create` names a group, or another operation names none.
    GroupField,
    /// A `Create` whose founder bundle is not the author's.
    FounderNotAuthor,
    /// A `Rotate` carrying someone else's bundle.
    RotateForeignBundle,
    /// A group can only be joined from its genesis `Create`.
    NotGenesis,
    /// Sequence number 0, a first operation naming a predecessor, a later one naming
    /// none, or a `Create` that is not its author's first operation.
    Chain,
    /// A watermark with sequence number 0 and an id, or the reverse.
    Watermark,
    /// An add, remove or rank change of the author itself (leaving is `Leave`).
    SelfSubject,
    /// A rank change to anything but admin or member.
    RankValue,
}

impl fmt::Display for InvalidOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GroupField => "a create must carry the all-zero group id and no other op may",
            Self::FounderNotAuthor => "the founder bundle of a create is not the author's",
            Self::RotateForeignBundle => "a rotate carries a bundle of another member",
            Self::NotGenesis => "a group is joined from its create operation only",
            Self::Chain => "the sequence number and predecessor do not form a chain",
            Self::Watermark => "a watermark names an op at sequence 0 or none above it",
            Self::SelfSubject => "an add, remove or rank change names its own author",
            Self::RankValue => "a rank change grants neither admin nor member",
        })
    }
}

impl Op {
    /// Domain string of an operation signature.
    pub const DOMAIN: &'static [u8; 16] = b"splitsafe/v2/op\0";
    /// The group field of a `Create`.
    pub const NO_GROUP: GroupId = GroupId([0; 32]);
    /// The `prev` field of an author's first operation.
    pub const NO_PREV: OpId = OpId([0; 32]);

    /// The bytes the author signs: domain, group, author, sequence number (big-endian),
    /// previous op id, timestamp (big-endian), a body tag (0 create, 1 add, 2 remove,
    /// 3 rotate, 4 leave, 5 rank), then the body's fields (a watermark as its sequence
    /// number, big-endian, then its op id; a rank as one byte, 0 member, 1 admin, 2 owner).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::DOMAIN.len() + 121 + 40 + KeyBundle::LEN);
        out.extend_from_slice(Self::DOMAIN);
        out.extend_from_slice(&self.group.0);
        out.extend_from_slice(&self.author.0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.prev.0);
        out.extend_from_slice(&self.timestamp.as_raw().to_be_bytes());
        out.push(self.body.tag());
        match &self.body {
            Body::Create { nonce, founder } => {
                out.extend_from_slice(nonce);
                out.extend_from_slice(&founder.to_bytes());
            }
            Body::Add { bundle, watermark } => {
                out.extend_from_slice(&bundle.to_bytes());
                watermark.write(&mut out);
            }
            Body::Rotate { bundle } => out.extend_from_slice(&bundle.to_bytes()),
            Body::Remove { member, watermark } => {
                out.extend_from_slice(&member.0);
                watermark.write(&mut out);
            }
            Body::Leave => {}
            Body::Rank {
                member,
                rank,
                watermark,
            } => {
                out.extend_from_slice(&member.0);
                out.push(rank.tag());
                watermark.write(&mut out);
            }
        }
        out
    }

    /// Reads [`signed_bytes`](Self::signed_bytes)'s layout back.
    fn from_signed_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut read = Fields(bytes.strip_prefix(Self::DOMAIN.as_slice()).ok_or(
            DecodeError::Invalid {
                reason: "not an operation's signed bytes".into(),
            },
        )?);
        let group = GroupId(read.array()?);
        let author = MemberId(read.array()?);
        let seq = u64::from_be_bytes(read.array()?);
        let prev = OpId(read.array()?);
        let timestamp = Timestamp::from_raw(u64::from_be_bytes(read.array()?));
        let [tag] = read.array()?;
        let body = match tag {
            0 => Body::Create {
                nonce: read.array()?,
                founder: read.bundle()?,
            },
            1 => Body::Add {
                bundle: read.bundle()?,
                watermark: read.watermark()?,
            },
            2 => Body::Remove {
                member: MemberId(read.array()?),
                watermark: read.watermark()?,
            },
            3 => Body::Rotate {
                bundle: read.bundle()?,
            },
            4 => Body::Leave,
            5 => Body::Rank {
                member: MemberId(read.array()?),
                rank: Rank::from_tag(read.array::<1>()?[0])
                    .ok_or_else(|| Fields::invalid("an unknown rank"))?,
                watermark: read.watermark()?,
            },
            _ => return Err(Fields::invalid("an unknown body tag")),
        };
        if !read.0.is_empty() {
            return Err(DecodeError::TrailingBytes {
                count: read.0.len(),
            });
        }
        Ok(Self {
            group,
            author,
            seq,
            prev,
            timestamp,
            body,
        })
    }

    /// Checks the rules that do not depend on any group state.
    ///
    /// # Errors
    ///
    /// [`InvalidOp`] naming the broken rule.
    pub fn check_structure(&self) -> Result<(), InvalidOp> {
        let is_create = matches!(self.body, Body::Create { .. });
        if is_create != (self.group == Self::NO_GROUP) {
            return Err(InvalidOp::GroupField);
        }
        if self.seq == 0 || (self.seq == 1) != (self.prev == Self::NO_PREV) {
            return Err(InvalidOp::Chain);
        }
        if is_create && self.seq != 1 {
            return Err(InvalidOp::Chain);
        }
        if let Some((subject, watermark)) = self.body.subject() {
            if subject == self.author {
                return Err(InvalidOp::SelfSubject);
            }
            if !watermark.is_well_formed() {
                return Err(InvalidOp::Watermark);
            }
        }
        match &self.body {
            Body::Create { founder, .. } if founder.member != self.author => {
                Err(InvalidOp::FounderNotAuthor)
            }
            Body::Rotate { bundle } if bundle.member != self.author => {
                Err(InvalidOp::RotateForeignBundle)
            }
            Body::Rank { rank, .. } if *rank == Rank::Owner => Err(InvalidOp::RankValue),
            _ => Ok(()),
        }
    }

    /// Signs the operation with `identity`, whose id the author field is set to.
    ///
    /// A [`Replica`](super::Replica) makes its members' operations, with the right sequence
    /// number, predecessor and watermarks; this is for tools and tests that need to craft
    /// operations as any signer could.
    pub fn sign(mut self, identity: &Identity) -> SignedOp {
        self.author = identity.id();
        let signed = identity.sign(self.signed_bytes());
        SignedOp::new(self, signed.signature)
    }
}

/// A signed operation, with its id.
///
/// Decoding does not verify the signature; [`SignedOp::verify`] does, and a replica verifies
/// before it stores anything.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "SignedOpWire", into = "SignedOpWire")]
pub struct SignedOp {
    op: Op,
    signature: SignatureBytes,
    id: OpId,
}

/// The encoded form: the op and its signature; the id is derived on decoding.
#[derive(Clone, Serialize, Deserialize)]
struct SignedOpWire {
    op: Op,
    signature: SignatureBytes,
}

impl From<SignedOpWire> for SignedOp {
    fn from(wire: SignedOpWire) -> Self {
        Self::new(wire.op, wire.signature)
    }
}

impl From<SignedOp> for SignedOpWire {
    fn from(signed: SignedOp) -> Self {
        Self {
            op: signed.op,
            signature: signed.signature,
        }
    }
}

/// The total order of operations: timestamp, then author, then op id. Two distinct
/// operations never compare equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// The author's hybrid-logical-clock stamp.
    pub timestamp: Timestamp,
    /// The author.
    pub author: MemberId,
    /// The operation's id.
    pub op: OpId,
}

impl Stamp {
    /// The least stamp.
    pub const MIN: Self = Self {
        timestamp: Timestamp::ZERO,
        author: MemberId([0; 32]),
        op: OpId([0; 32]),
    };
}

impl SignedOp {
    fn new(op: Op, signature: SignatureBytes) -> Self {
        let id = Self::id_of(&op.signed_bytes());
        Self { op, signature, id }
    }

    /// The operation.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// The author's signature over [`Op::signed_bytes`].
    pub fn signature(&self) -> &SignatureBytes {
        &self.signature
    }

    /// The operation's id.
    pub fn id(&self) -> OpId {
        self.id
    }

    /// Its id, borrowed (for tables that find an operation by its id).
    pub(crate) fn id_ref(&self) -> &OpId {
        &self.id
    }

    /// Its position in the total order of operations.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            timestamp: self.op.timestamp,
            author: self.op.author,
            op: self.id,
        }
    }

    /// The signatures this operation carries: the author's, and the bundle's if any.
    pub(crate) fn signed_messages(&self) -> impl Iterator<Item = SignedMessage> + '_ {
        let own = SignedMessage {
            signer: self.op.author,
            bytes: self.op.signed_bytes(),
            signature: self.signature,
        };
        std::iter::once(own).chain(self.op.body.bundle().map(KeyBundle::signed_message))
    }

    /// Verifies the author's signature and that of any bundle carried.
    ///
    /// # Errors
    ///
    /// [`KeyError`] naming the key that failed.
    pub fn verify(&self) -> Result<(), KeyError> {
        self.signed_messages().try_for_each(|m| m.verify())
    }

    /// The CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes an operation from untrusted bytes (at most [`MAX_OP_LEN`]); does not verify.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for anything that is not exactly one well-formed operation.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_OP_LEN)
    }

    /// The form a device stores an operation in (a [`Store`](crate::device::Store) receives
    /// it in `Write::Op`; it is not an interchange format: send [`to_cbor`](Self::to_cbor)):
    /// its signed bytes ([`Op::signed_bytes`],
    /// which begin with [`Op::DOMAIN`]) and then its signature. Fixed fields, read without
    /// a CBOR decoder: reopening a device reads every operation it holds, and decoding CBOR
    /// was a third of it. 80 bytes smaller than the CBOR, too.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut bytes = self.op.signed_bytes();
        bytes.extend_from_slice(&self.signature.0);
        bytes
    }

    /// Reads an operation this crate stored itself: [`to_stored`](Self::to_stored)'s form,
    /// or the CBOR encoding earlier versions stored (told apart by their first bytes: the
    /// stored form begins with [`Op::DOMAIN`], CBOR with a map's head), decoded without the
    /// check that it is the deterministic encoding (this code wrote it, and a store is
    /// trusted as memory is). The signature is not checked.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if the bytes are neither.
    pub fn from_stored(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::read_stored(bytes, None)
    }

    /// As [`from_stored`](Self::from_stored), but with the id the store keeps beside the
    /// bytes, not hashed again from them (a tenth of reopening a device of 100,000
    /// operations): for rows this crate wrote with their id, in a store trusted as memory
    /// is. (CBOR rows of earlier versions are hashed as they are decoded.)
    pub(crate) fn from_stored_with_id(bytes: &[u8], id: OpId) -> Result<Self, DecodeError> {
        Self::read_stored(bytes, Some(id))
    }

    fn read_stored(bytes: &[u8], id: Option<OpId>) -> Result<Self, DecodeError> {
        if !bytes.starts_with(Op::DOMAIN) {
            return codec::decode_stored(bytes, MAX_OP_LEN);
        }
        let Some(signed_len) = bytes.len().checked_sub(64) else {
            return Err(DecodeError::Truncated);
        };
        let (signed, signature) = bytes.split_at(signed_len);
        let op = Op::from_signed_bytes(signed)?;
        Ok(Self {
            op,
            signature: SignatureBytes(signature.try_into().expect("64 bytes")),
            id: id.unwrap_or_else(|| Self::id_of(signed)),
        })
    }

    /// The id of the operation whose signed bytes are `signed`.
    fn id_of(signed: &[u8]) -> OpId {
        OpId(blake3::derive_key("splitsafe v2 op id", signed))
    }
}

/// Fixed-size fields read in order off a slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn invalid(reason: &str) -> DecodeError {
        DecodeError::Invalid {
            reason: format!("stored operation: {reason}"),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (field, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(*field)
    }

    fn bundle(&mut self) -> Result<KeyBundle, DecodeError> {
        let bytes: [u8; KeyBundle::LEN] = self.array()?;
        KeyBundle::from_bytes(&bytes)
    }

    fn watermark(&mut self) -> Result<Watermark, DecodeError> {
        Ok(Watermark {
            seq: u64::from_be_bytes(self.array()?),
            op: OpId(self.array()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{Replica, ReplicaConfig};
    use crate::keys::{EncryptionKey, Identity};

    fn identity(i: u8) -> Identity {
        Identity::from_secret_bytes([i; 32])
    }

    fn bundle(who: &Identity, i: u8, at: u64) -> KeyBundle {
        let secret = x25519_dalek::StaticSecret::from([i.max(1); 32]);
        let key = EncryptionKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        who.bundle(key, Timestamp::from_physical(at))
    }

    /// Every kind of operation reads back from its stored form as itself, with its id, and
    /// the stored form is the signed bytes and the signature; older stores' CBOR still reads.
    #[test]
    fn every_operation_reads_back_from_its_stored_form() {
        let t = 1_795_694_400_000;
        let (owner, bob, carol) = (identity(1), identity(2), identity(3));
        let config = ReplicaConfig::default();
        let (mut replica, genesis) =
            Replica::create(&owner, bundle(&owner, 1, t), [7; 16], config, t).unwrap();
        let mut ops = vec![genesis];
        ops.push(replica.add(&owner, bundle(&bob, 2, t), t + 1).unwrap().0);
        ops.push(replica.add(&owner, bundle(&carol, 3, t), t + 2).unwrap().0);
        ops.push(
            replica
                .rotate(&bob, bundle(&bob, 4, t + 3), t + 3)
                .unwrap()
                .0,
        );
        ops.push(replica.promote(&owner, bob.id(), t + 4).unwrap().0);
        ops.push(replica.remove(&bob, carol.id(), t + 5).unwrap().0);
        ops.push(replica.leave(&bob, t + 6).unwrap().0);
        let tags: Vec<u8> = ops.iter().map(|op| op.op().body.tag()).collect();
        assert_eq!(tags, [0, 1, 1, 3, 5, 2, 4], "every body kind");
        for op in &ops {
            let stored = op.to_stored();
            assert_eq!(stored[..stored.len() - 64], op.op().signed_bytes());
            let read = SignedOp::from_stored(&stored).unwrap();
            assert_eq!(&read, op);
            assert_eq!(read.id(), op.id());
            assert_eq!(SignedOp::from_stored(&op.to_cbor()).unwrap(), *op);
            for cut in [1, 64, stored.len() - Op::DOMAIN.len()] {
                assert!(SignedOp::from_stored(&stored[..stored.len() - cut]).is_err());
            }
            let mut longer = stored.clone();
            longer.insert(Op::DOMAIN.len() + 40, 0);
            assert!(SignedOp::from_stored(&longer).is_err());
        }
    }
}
