//! The member view: who is in the group now, with each member's encryption key.

use super::op::{GroupId, Rank};
use crate::keys::{byte_array, KeyBundle, MemberId};
use std::collections::BTreeMap;
use std::fmt;

byte_array!(
    /// A BLAKE3 digest of a [`View`]: equal digests mean equal views.
    ViewDigest,
    32
);

/// The members of a group at one replica, with their current key bundles and ranks.
#[derive(Clone, PartialEq, Eq)]
pub struct View {
    group: GroupId,
    members: BTreeMap<MemberId, (KeyBundle, Rank)>,
    digest: ViewDigest,
}

impl View {
    /// BLAKE3 derive-key context of the digest.
    pub const DIGEST_CONTEXT: &'static str = "splitsafe v2 view digest";

    pub(crate) fn new<'a>(
        group: GroupId,
        members: impl Iterator<Item = (&'a MemberId, &'a KeyBundle, Rank)>,
    ) -> Self {
        let members: BTreeMap<MemberId, (KeyBundle, Rank)> = members
            .map(|(id, bundle, rank)| (*id, (*bundle, rank)))
            .collect();
        // group id, member count (u64 big-endian), then each member id, its encryption key
        // and its rank (one byte: 0 member, 1 admin, 2 owner) in ascending member order.
        let mut hasher = blake3::Hasher::new_derive_key(Self::DIGEST_CONTEXT);
        hasher.update(&group.0);
        hasher.update(&(members.len() as u64).to_be_bytes());
        for (id, (bundle, rank)) in &members {
            hasher.update(&id.0);
            hasher.update(&bundle.encryption_key.0);
            hasher.update(&[rank.tag()]);
        }
        Self {
            group,
            members,
            digest: ViewDigest(hasher.finalize().into()),
        }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The digest of this view.
    pub fn digest(&self) -> ViewDigest {
        self.digest
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the view has no members (everyone left).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `member` is in the view.
    pub fn contains(&self, member: &MemberId) -> bool {
        self.members.contains_key(member)
    }

    /// The current bundle of `member`, if it is in the view.
    pub fn bundle(&self, member: &MemberId) -> Option<&KeyBundle> {
        self.members.get(member).map(|(bundle, _)| bundle)
    }

    /// The rank of `member`, if it is in the view.
    pub fn rank(&self, member: &MemberId) -> Option<Rank> {
        self.members.get(member).map(|(_, rank)| *rank)
    }

    /// Members with their bundles, in ascending member order.
    pub fn members(&self) -> impl Iterator<Item = (&MemberId, &KeyBundle)> + '_ {
        self.members.iter().map(|(id, (bundle, _))| (id, bundle))
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("digest", &self.digest)
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .finish()
    }
}
