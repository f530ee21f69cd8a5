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
    /// `"splitsafe v1 op id"`) of its signed bytes.
    OpId,
    32
);

/// The largest encoded operation [`SignedOp::from_cbor`] accepts. A `Create`, the largest
/// operation, encodes to under 400 bytes.
pub const MAX_OP_LEN: usize = 1024;

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// The genesis: founds the group with its author as the only member.
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
    },
    /// Removes a member; removing oneself is leaving.
    Remove {
        /// The member removed.
        member: MemberId,
    },
    /// Publishes the author's own new encryption key.
    Rotate {
        /// The author's new self-signed bundle.
        bundle: KeyBundle,
    },
}

impl Body {
    fn tag(&self) -> u8 {
        match self {
            Self::Create { .. } => 0,
            Self::Add { .. } => 1,
            Self::Remove { .. } => 2,
            Self::Rotate { .. } => 3,
        }
    }

    /// The bundle this operation carries, if any.
    pub fn bundle(&self) -> Option<&KeyBundle> {
        match self {
            Self::Create {
                founder: bundle, ..
            }
            | Self::Add { bundle }
            | Self::Rotate { bundle } => Some(bundle),
            Self::Remove { .. } => None,
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
}

impl fmt::Display for InvalidOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GroupField => "a create must carry the all-zero group id and no other op may",
            Self::FounderNotAuthor => "the founder bundle of a create is not the author's",
            Self::RotateForeignBundle => "a rotate carries a bundle of another member",
            Self::NotGenesis => "a group is joined from its create operation only",
        })
    }
}

impl Op {
    /// Domain string of an operation signature.
    pub const DOMAIN: &'static [u8; 16] = b"splitsafe/v1/op\0";
    /// The group field of a `Create`.
    pub const NO_GROUP: GroupId = GroupId([0; 32]);

    /// The bytes the author signs: domain, group, author, timestamp (big-endian), a body tag
    /// (0 create, 1 add, 2 remove, 3 rotate), then the body's fields.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::DOMAIN.len() + 73 + 16 + KeyBundle::LEN);
        out.extend_from_slice(Self::DOMAIN);
        out.extend_from_slice(&self.group.0);
        out.extend_from_slice(&self.author.0);
        out.extend_from_slice(&self.timestamp.as_raw().to_be_bytes());
        out.push(self.body.tag());
        match &self.body {
            Body::Create { nonce, founder } => {
                out.extend_from_slice(nonce);
                out.extend_from_slice(&founder.to_bytes());
            }
            Body::Add { bundle } | Body::Rotate { bundle } => {
                out.extend_from_slice(&bundle.to_bytes());
            }
            Body::Remove { member } => out.extend_from_slice(&member.0),
        }
        out
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
        match &self.body {
            Body::Create { founder, .. } if founder.member != self.author => {
                Err(InvalidOp::FounderNotAuthor)
            }
            Body::Rotate { bundle } if bundle.member != self.author => {
                Err(InvalidOp::RotateForeignBundle)
            }
            _ => Ok(()),
        }
    }

    /// Signs the operation. The author field must be `identity`'s id; it is set here.
    pub(crate) fn sign(mut self, identity: &Identity) -> SignedOp {
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

    /// The greatest stamp with timestamp `t`: everything at or before `t` sorts below it.
    pub const fn last_at(t: Timestamp) -> Self {
        Self {
            timestamp: t,
            author: MemberId([0xFF; 32]),
            op: OpId([0xFF; 32]),
        }
    }
}

impl SignedOp {
    fn new(op: Op, signature: SignatureBytes) -> Self {
        let id = OpId(
            blake3::Hasher::new_derive_key("splitsafe v1 op id")
                .update(&op.signed_bytes())
                .finalize()
                .into(),
        );
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
}
