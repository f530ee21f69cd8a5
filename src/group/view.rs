//! The member view: who is in the group now, with each member's encryption key and rank.

use super::op::{GroupId, Rank};
use crate::keys::{byte_array, EncryptionKey, MemberId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

byte_array!(
    /// A BLAKE3 digest of a [`View`]: equal digests mean equal views.
    ViewDigest,
    32
);

/// The members of a group at one replica, with their current encryption keys and ranks (the
/// key of each member's newest bundle: what sealing and the digest need; the view holds 33
/// bytes a member, not a 137-byte bundle).
///
/// A replica keeps its view up to date with each change the engine reports, one member at a
/// time, and computes the digest (which covers every member) only when asked, once per
/// change: a change to a view of 56,000 members costs a map update, not a rebuild.
#[derive(Clone)]
pub struct View {
    group: GroupId,
    members: BTreeMap<MemberId, (EncryptionKey, Rank)>,
    digest: OnceLock<ViewDigest>,
}

impl PartialEq for View {
    fn eq(&self, other: &Self) -> bool {
        self.group == other.group && self.members == other.members
    }
}

impl Eq for View {}

impl View {
    /// BLAKE3 derive-key context of the digest.
    pub const DIGEST_CONTEXT: &'static str = "splitsafe v2 view digest";

    /// The view of `group` holding `members`.
    pub(crate) fn new<'a>(
        group: GroupId,
        members: impl Iterator<Item = (&'a MemberId, EncryptionKey, Rank)>,
    ) -> Self {
        Self {
            group,
            members: members.map(|(id, key, rank)| (*id, (key, rank))).collect(),
            digest: OnceLock::new(),
        }
    }

    /// Puts `member`'s entry as the engine now shows it: its key and rank, or `None` if it
    /// is not in the view.
    pub(crate) fn set(&mut self, member: MemberId, entry: Option<(EncryptionKey, Rank)>) {
        let changed = match entry {
            Some(entry) => self.members.insert(member, entry) != Some(entry),
            None => self.members.remove(&member).is_some(),
        };
        if changed {
            self.digest = OnceLock::new();
        }
    }

    /// `derive_key(DIGEST_CONTEXT, group || member count (u64 BE) || for each member in
    /// ascending order: id || encryption key || rank tag)`, fed to the hasher in blocks of
    /// 64 KiB (BLAKE3 hashes a long input several times faster than 65-byte pieces: it
    /// works on many 1 KiB chunks at once).
    fn compute_digest(&self) -> ViewDigest {
        const ENTRY: usize = 32 + 32 + 1;
        let mut hasher = blake3::Hasher::new_derive_key(Self::DIGEST_CONTEXT);
        hasher.update(&self.group.0);
        hasher.update(&(self.members.len() as u64).to_be_bytes());
        let mut block = Vec::with_capacity(1024 * ENTRY);
        for (id, (key, rank)) in &self.members {
            block.extend_from_slice(&id.0);
            block.extend_from_slice(&key.0);
            block.push(rank.tag());
            if block.len() == block.capacity() {
                hasher.update(&block);
                block.clear();
            }
        }
        hasher.update(&block);
        ViewDigest(hasher.finalize().into())
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The digest of this view (computed at the first call after a change).
    pub fn digest(&self) -> ViewDigest {
        *self.digest.get_or_init(|| self.compute_digest())
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

    /// The encryption key of `member` (its newest bundle's), if it is in the view.
    pub fn key(&self, member: &MemberId) -> Option<&EncryptionKey> {
        self.members.get(member).map(|(key, _)| key)
    }

    /// The rank of `member`, if it is in the view.
    pub fn rank(&self, member: &MemberId) -> Option<Rank> {
        self.members.get(member).map(|(_, rank)| *rank)
    }

    /// Members with their encryption keys, in ascending member order.
    pub fn members(&self) -> impl Iterator<Item = (&MemberId, &EncryptionKey)> + '_ {
        self.members.iter().map(|(id, (key, _))| (id, key))
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("digest", &self.digest())
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .finish()
    }
}
