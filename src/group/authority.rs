//! The authorization engine: which logged operations take effect, and the member view that
//! follows from them, as a pure function of the set of logged operations.
//!
//! An operation takes effect iff it is on its author's chain, its author is enabled at its
//! sequence number, and its author's rank allows it (`spec/membership.md`, "Authorization").
//! Timestamps decide only one thing: among the adds, removes and leaves of one member that
//! take effect, the latest stamp wins (an LWW-Element-Set).
//!
//! The rules are stratified: the owner's operations depend on nothing but the owner's
//! chain; those about anyone who has ever been an admin count only if the owner made them;
//! those about a member who has never been an admin count only if the owner or an admin (at
//! its own sequence number) made them. Dependencies therefore never form a cycle, the result
//! is unique, and it can be maintained incrementally: an operation whose verdict changes
//! marks only the operations that verdict can change (its subject's operations above its
//! watermark, the operations about a member whose rank changed, an equivocator's chain), and
//! those are judged again, lowest stratum first, until nothing changes.

use super::op::{Body, Op, OpId, Rank, SignedOp, Stamp, Watermark};
use super::small_map::{room_for_one, SmallMap};
use super::standing::{PositionError, Standing};
use crate::clock::Timestamp;
use crate::keys::{EncryptionKey, KeyBundle, MemberId};
use crate::lww;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};

/// What changed in the view for one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// The member joined the view.
    Added(MemberId),
    /// The member left the view (removed or left).
    Removed(MemberId),
    /// The member stayed and its encryption key changed.
    KeyRotated(MemberId),
    /// The member stayed and its rank changed.
    RankChanged(MemberId),
}

impl Change {
    /// The member the change is about.
    pub fn member(&self) -> MemberId {
        match self {
            Self::Added(m) | Self::Removed(m) | Self::KeyRotated(m) | Self::RankChanged(m) => *m,
        }
    }
}

/// A logged operation and its verdict: an element of the id table, which it is found in
/// by its operation's id (so the table does not hold each id a second time, beside the
/// operation that holds it: 48 bytes a slot, not 16).
#[derive(Clone, Debug)]
struct Node {
    /// Boxed, so that the id table's slots (a third of them empty on average) are small:
    /// the operation inline made every slot, empty or not, cost about 450 bytes.
    op: Box<SignedOp>,
    /// On its author's chain: every equivocation at or below it is pinned to it.
    on_chain: bool,
    /// Takes effect.
    effective: bool,
}

impl Borrow<OpId> for Node {
    fn borrow(&self) -> &OpId {
        self.op.id_ref()
    }
}

/// A node is its operation's id, as the table sees it: hashed and compared as the id is
/// (which `Borrow` requires), never by verdict.
impl Hash for Node {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.op.id_ref().hash(state);
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.op.id_ref() == other.op.id_ref()
    }
}

impl Eq for Node {}

/// One add, remove or leave of a member that takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// The member's operations above it are governed by this entry.
    watermark: u64,
    present: bool,
}

impl Entry {
    /// The entry as the LWW-Element-Set of `lww` sees it.
    fn lww((stamp, entry): (&Stamp, &Entry)) -> lww::Entry<Stamp> {
        let action = match entry.present {
            true => lww::Action::Insert,
            false => lww::Action::Remove,
        };
        lww::Entry {
            stamp: *stamp,
            action,
        }
    }
}

/// Orders a member's bundles as [`KeyBundle::is_newer_than`] does. Bundles that differ only
/// in their signature bytes share a key and are counted together: nothing reads more of a
/// bundle than its time and key, so the newest key is a function of the set either way, and
/// the 64 signature bytes would double every entry.
type BundleKey = (Timestamp, EncryptionKey);

/// Everything known about one member, as author and as subject.
#[derive(Clone, Debug, Default)]
struct Member {
    /// Its logged operations by sequence number: the first logged at each number (the
    /// others, if any, are a fork, kept in [`Rare::forks`]). One id inline, not a vector
    /// per number: most numbers never fork.
    chain: SmallMap<u64, OpId>,
    /// Its adds, removes and leaves that take effect, by stamp.
    standing: SmallMap<Stamp, Entry>,
    /// Logged operations of others about it.
    about: Vec<OpId>,
    /// Keys of the bundles its own logged operations carry, whatever their verdict.
    own_keys: SmallMap<EncryptionKey, ()>,
    /// Bundles of its operations and of adds of it that take effect (a multiset), by what
    /// orders them: the member is the map's, and nothing reads a bundle's other fields.
    bundles: SmallMap<BundleKey, usize>,
    /// What few members have: allocated at its first use (it is 170 bytes, and most members
    /// never fork, never have a rank changed and are never named by a watermark).
    rare: Option<Box<Rare>>,
}

/// The parts of a [`Member`] most members never need.
#[derive(Clone, Debug, Default)]
struct Rare {
    /// Sequence numbers with a fork, and the operations logged there after the one in
    /// [`Member::chain`], in the order they were logged.
    forks: BTreeMap<u64, Vec<OpId>>,
    /// The owner's rank changes of it that take effect, in the owner's chain order:
    /// (owner's seq, op) -> (watermark, rank).
    grants: BTreeMap<(u64, OpId), (u64, Rank)>,
    /// Its operations named by a watermark of an operation about it that takes effect, with
    /// the sequence number the watermark gives (a multiset). A pin counts only if it names
    /// its logged operation at exactly that number.
    pins: BTreeMap<(u64, OpId), usize>,
    /// Its logged operations at or below a pin on the pin's branch; computed when an
    /// equivocation needs it, dropped when the pins change or a missing link of a pinned
    /// branch arrives. Each pin's branch is walked once.
    pinned: Option<Pinned>,
}

/// The [`Rare`] parts of a member that has none.
static NONE_RARE: Rare = Rare {
    forks: BTreeMap::new(),
    grants: BTreeMap::new(),
    pins: BTreeMap::new(),
    pinned: None,
};

impl Member {
    fn rare(&self) -> &Rare {
        self.rare.as_deref().unwrap_or(&NONE_RARE)
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// An add of it took effect (or it founded the group).
    fn added(&self) -> bool {
        self.standing.values().any(|s| s.present)
    }

    /// Its logged operations at `seq`, in the order they were logged.
    fn ids_at(&self, seq: u64) -> impl Iterator<Item = &OpId> + '_ {
        let others = self.rare().forks.get(&seq).into_iter().flatten();
        self.chain.get(&seq).into_iter().chain(others)
    }

    /// In the view: the LWW-Element-Set rule over its adds, removes and leaves that count.
    fn is_present(&self) -> bool {
        lww::winner(self.standing.iter().map(Entry::lww)).is_some_and(|e| e.is_present())
    }

    /// The encryption key of its newest bundle.
    fn newest_key(&self) -> Option<EncryptionKey> {
        self.bundles.last().map(|((_, key), _)| *key)
    }

    /// The highest watermark of an operation about it that takes effect.
    fn vouched_to(&self) -> u64 {
        let standing = self.standing.values().map(|s| s.watermark);
        let grants = self.rare().grants.values().map(|(watermark, _)| *watermark);
        standing.chain(grants).max().unwrap_or(0)
    }

    fn ever_admin(&self) -> bool {
        self.rare()
            .grants
            .values()
            .any(|(_, rank)| *rank == Rank::Admin)
    }

    /// Enabled at `seq`: the latest (by stamp) standing entry whose watermark is below `seq`
    /// is an add.
    fn enabled_at(&self, seq: u64) -> bool {
        let below = self.standing.iter().filter(|(_, s)| s.watermark < seq);
        lww::winner(below.map(Entry::lww)).is_some_and(|e| e.is_present())
    }

    /// Rank at `seq`: the owner's latest grant whose watermark is below `seq`.
    fn rank_at(&self, seq: u64) -> Rank {
        self.rare()
            .grants
            .values()
            .rev()
            .find(|(watermark, _)| *watermark < seq)
            .map_or(Rank::Member, |(_, rank)| *rank)
    }

    fn current_rank(&self) -> Rank {
        self.rare()
            .grants
            .values()
            .next_back()
            .map_or(Rank::Member, |(_, rank)| *rank)
    }
}

/// The operations on pinned branches, and the ids where those walks stopped because the
/// operation is not logged (its arrival extends a branch).
#[derive(Clone, Debug, Default)]
struct Pinned {
    ops: HashSet<OpId>,
    missing: HashSet<OpId>,
}

/// A member as the view shows it, for telling what changed.
type Shown = Option<(EncryptionKey, Rank)>;

fn toggle<K: Ord>(map: &mut BTreeMap<K, usize>, key: K, on: bool) {
    if on {
        *map.entry(key).or_insert(0) += 1;
    } else if let Some(count) = map.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            map.remove(&key);
        }
    }
}

/// The logged operations, their verdicts, and the view that follows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Authority {
    owner: Option<MemberId>,
    /// The logged operations, found by id. There is no index by stamp: only saving and
    /// welcoming list the whole log in stamp order, and sorting it then costs less than
    /// keeping a 72-byte stamp per operation in a B-tree (110 bytes an operation).
    nodes: HashSet<Node>,
    /// Boxed: a member is about 150 bytes, mostly empty collections; inline, every slot of
    /// the B-tree's nodes (a third of them empty) cost as much.
    members: BTreeMap<MemberId, Box<Member>>,
    /// Members whose view entry may have changed since the last `take_changes`, as they were.
    journal: BTreeMap<MemberId, Shown>,
    /// Nothing is journaled: a replica being restored builds its view in one pass once
    /// every operation is in (journaling each member as it changes was a sixth of
    /// reopening a device).
    unjournaled: bool,
    /// Operations to judge again: (stratum, author, seq).
    dirty: BTreeSet<(u8, MemberId, u64)>,
    /// Counts changes of the pins, so a caller can tell its view of them is stale.
    pin_epoch: u64,
}

impl Authority {
    /// The logged operation `id`'s node; `id` must be logged.
    fn node(&self, id: &OpId) -> &Node {
        self.nodes.get(id).expect("a logged operation's id")
    }

    /// Stops journaling changes (`false`) or starts again (`true`, with nothing journaled):
    /// whoever stops it builds the view again from [`view`](Self::view).
    pub(crate) fn set_journaling(&mut self, on: bool) {
        self.unjournaled = !on;
        self.journal.clear();
    }

    /// Whether the operation is logged.
    pub(crate) fn contains(&self, id: &OpId) -> bool {
        self.nodes.contains(id)
    }

    /// Number of logged operations.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// All logged operations in stamp order.
    pub(crate) fn ops(&self) -> impl DoubleEndedIterator<Item = &SignedOp> + '_ {
        let mut ops: Vec<&SignedOp> = self.nodes.iter().map(|node| &*node.op).collect();
        ops.sort_unstable_by_key(|op| op.stamp());
        ops.into_iter()
    }

    /// The newest timestamp of a logged operation.
    pub(crate) fn newest(&self) -> Option<Timestamp> {
        self.nodes.iter().map(|node| node.op.op().timestamp).max()
    }

    /// `author`'s logged operations' stamps, in no particular order.
    pub(crate) fn stamps_of<'a>(&'a self, author: &MemberId) -> impl Iterator<Item = Stamp> + 'a {
        let member = self.members.get(author);
        let forks = member
            .into_iter()
            .flat_map(|m| m.rare().forks.values().flatten());
        member
            .into_iter()
            .flat_map(|m| m.chain.iter().map(|(_, id)| id))
            .chain(forks)
            .map(|id| self.node(id).op.stamp())
    }

    /// The logged operation with this stamp.
    pub(crate) fn get(&self, stamp: &Stamp) -> Option<&SignedOp> {
        self.nodes
            .get(&stamp.op)
            .map(|node| &*node.op)
            .filter(|op| op.stamp() == *stamp)
    }

    /// Whether the logged operation `id` takes effect (`None`: not logged).
    pub(crate) fn is_effective(&self, id: &OpId) -> Option<bool> {
        self.nodes.get(id).map(|n| n.effective)
    }

    /// `member`'s highest logged operation on its chain, as the watermark an operation
    /// about it records, or as the predecessor of its next operation. An unpinned fork is on
    /// nobody's chain, so a watermark stops below it and pins neither branch; where two
    /// pinned branches stand side by side, the one with the least id.
    pub(crate) fn head(&self, member: &MemberId) -> Option<(u64, OpId)> {
        let member = self.members.get(member)?;
        member.chain.iter().rev().find_map(|(seq, _)| {
            member
                .ids_at(*seq)
                .filter(|id| self.node(id).on_chain)
                .min()
                .map(|id| (*seq, *id))
        })
    }

    /// Counts changes of the pins (see [`pins_over`](Self::pins_over)).
    pub(crate) fn pin_epoch(&self) -> u64 {
        self.pin_epoch
    }

    /// `member`'s pins at `seq` or above, as (sequence number, operation): each names the
    /// top of a branch whose operations are the only ones of `member` at or below it worth
    /// logging (anything else there is off a pinned branch, hence void).
    pub(crate) fn pins_over(
        &self,
        member: &MemberId,
        seq: u64,
    ) -> impl Iterator<Item = (u64, OpId)> + '_ {
        self.members.get(member).into_iter().flat_map(move |m| {
            m.rare()
                .pins
                .range((seq, OpId([0; 32]))..)
                .map(|(pin, _)| *pin)
        })
    }

    /// The logged operation `id`'s author and sequence number.
    pub(crate) fn position_of(&self, id: &OpId) -> Option<(MemberId, u64)> {
        let op = self.nodes.get(id)?.op.op();
        Some((op.author, op.seq))
    }

    /// Whether `op` can enter the log now: `Some(true)` if its predecessor is logged and its
    /// author is enabled at its sequence number or vouched for up to it (the genesis always
    /// is), `Some(false)` if it must wait, `None` if it never can (it names as predecessor an
    /// operation that is not its author's previous one).
    ///
    /// Vouched-for operations are logged even when void, so that the chain a watermark pins
    /// is stored and the author's later operations (after a re-add) can follow it; what an
    /// author can make a replica log beyond what others vouch for is only what takes effect.
    pub(crate) fn loggable(&self, op: &SignedOp) -> Option<bool> {
        let op = op.op();
        if matches!(op.body, Body::Create { .. }) {
            return Some(true);
        }
        if op.seq > 1 {
            match self.nodes.get(&op.prev) {
                None => return Some(false),
                Some(prev)
                    if prev.op.op().author != op.author || prev.op.op().seq + 1 != op.seq =>
                {
                    return None
                }
                Some(_) => {}
            }
        }
        Some(
            self.members
                .get(&op.author)
                .is_some_and(|m| m.enabled_at(op.seq) || m.vouched_to() >= op.seq),
        )
    }

    fn enabled(&self, author: &MemberId, seq: u64) -> bool {
        self.members.get(author).is_some_and(|m| m.enabled_at(seq))
    }

    fn rank_at(&self, author: &MemberId, seq: u64) -> Rank {
        if self.owner == Some(*author) {
            return Rank::Owner;
        }
        self.members
            .get(author)
            .map_or(Rank::Member, |m| m.rank_at(seq))
    }

    fn stratum(&self, member: &MemberId) -> u8 {
        if self.owner == Some(*member) {
            0
        } else if self.members.get(member).is_some_and(|m| m.ever_admin()) {
            1
        } else {
            2
        }
    }

    /// Whether `op`'s author may do what it does, at its sequence number.
    pub(crate) fn authorized(&self, op: &Op) -> bool {
        let is_owner = |m: &MemberId| self.owner == Some(*m);
        match &op.body {
            Body::Create { .. } => is_owner(&op.author),
            Body::Rotate { .. } => true,
            Body::Leave => !is_owner(&op.author),
            Body::Rank { .. } => is_owner(&op.author),
            Body::Add { .. } | Body::Remove { .. } => {
                let Some((subject, _)) = op.body.subject() else {
                    return false;
                };
                !is_owner(&subject)
                    && (is_owner(&op.author)
                        || (self.rank_at(&op.author, op.seq) == Rank::Admin
                            && !self.members.get(&subject).is_some_and(|m| m.ever_admin())))
            }
        }
    }

    /// Whether `op`, made next on its author's chain, would take effect: for refusing local
    /// actions that would be void.
    pub(crate) fn would_take_effect(&self, op: &Op) -> bool {
        self.enabled(&op.author, op.seq) && self.authorized(op)
    }

    /// Whether `member` is in the view.
    pub(crate) fn is_member(&self, member: &MemberId) -> bool {
        self.members.get(member).is_some_and(|m| m.is_present())
    }

    /// `member`'s rank now (its last grant; removal does not change it).
    pub(crate) fn rank(&self, member: &MemberId) -> Rank {
        if self.owner == Some(*member) {
            return Rank::Owner;
        }
        self.members
            .get(member)
            .map_or(Rank::Member, |m| m.current_rank())
    }

    /// `member`'s entry in the view: its newest key and its rank, if it is present.
    pub(crate) fn shown(&self, member: &MemberId) -> Shown {
        let m = self.members.get(member)?;
        if !m.is_present() {
            return None;
        }
        Some((m.newest_key()?, self.rank(member)))
    }

    /// Present members with their current keys and ranks, in member order.
    pub(crate) fn view(&self) -> impl Iterator<Item = (&MemberId, EncryptionKey, Rank)> + '_ {
        self.members.iter().filter_map(|(id, m)| {
            let key = m.newest_key()?;
            m.is_present().then(|| (id, key, self.rank(id)))
        })
    }

    /// Members no longer in the view, with the stamp of the entry that took them out.
    pub(crate) fn past_members(&self) -> impl Iterator<Item = (&MemberId, &Stamp)> + '_ {
        self.members.iter().filter_map(|(id, m)| {
            let (stamp, last) = m.standing.last()?;
            (!last.present).then_some((id, stamp))
        })
    }

    /// Every encryption key of `member`'s from an operation that takes effect, and, if an
    /// add of it ever took effect (or it is the owner), from its own logged operations
    /// whether or not they take effect: a bundle is signed by its member, so its key is
    /// authentic either way. Void adds admit no key.
    pub(crate) fn keys(&self, member: &MemberId) -> BTreeSet<EncryptionKey> {
        let Some(m) = self.members.get(member) else {
            return BTreeSet::new();
        };
        let mut keys: BTreeSet<EncryptionKey> =
            m.bundles.iter().map(|((_, key), _)| *key).collect();
        if self.admitted(member) {
            keys.extend(m.own_keys.iter().map(|(key, ())| *key));
        }
        keys
    }

    /// Whether an add of `member` ever took effect (or it is the owner).
    pub(crate) fn admitted(&self, member: &MemberId) -> bool {
        self.owner == Some(*member) || self.members.get(member).is_some_and(|m| m.added())
    }

    /// [`admitted`](Self::admitted) for members asked about in increasing order: one walk
    /// over the members, not a descent of their B-tree per question (a summary asks about
    /// every author, and the descents were nearly all of making one).
    pub(crate) fn admitted_in_order(&self) -> impl FnMut(&MemberId) -> bool + '_ {
        let mut members = self.members.iter().peekable();
        move |member| {
            while members.next_if(|(id, _)| *id < member).is_some() {}
            self.owner == Some(*member)
                || members
                    .peek()
                    .is_some_and(|(id, m)| *id == member && m.added())
        }
    }

    /// Judges `member` as the sender of a message sealed at `position` on its own chain
    /// (see [`Standing`]).
    ///
    /// The member's latest add, remove or leave decides. If it took the member out without
    /// having seen the position (watermark below it; a leave has not seen its own number),
    /// the position is one where the member's operations are void: `Beyond`. Otherwise the
    /// position must name an operation on the member's chain, and the member is `Member` or
    /// `Removed` as that entry says: an entry that had seen the position cannot tell whether
    /// the message came before or after it, and neither can the reader.
    pub(crate) fn standing_at(
        &self,
        member: &MemberId,
        position: Watermark,
    ) -> Result<Standing, PositionError> {
        let never = PositionError::NeverAMember(*member);
        let m = self.members.get(member).filter(|_| self.admitted(member));
        let m = m.ok_or(never)?;
        let entry_op = |stamp: &Stamp| stamp.op;
        let seq = position.seq;
        let latest = m.standing.last();
        if let Some((stamp, entry)) = latest.filter(|(_, entry)| !entry.present) {
            let by = entry_op(stamp);
            // A leave is the member's own operation at its watermark: it has not seen itself.
            let seen = entry.watermark >= seq && by != position.op;
            if !seen {
                return Ok(Standing::Beyond { by });
            }
        }
        if seq > 0 {
            let node = self.nodes.get(&position.op);
            let node = node.ok_or(PositionError::Unknown {
                sender: *member,
                seq,
            })?;
            let op = node.op.op();
            if op.author != *member || op.seq != seq || !node.on_chain {
                return Err(PositionError::OffChain {
                    sender: *member,
                    seq,
                });
            }
        }
        match latest {
            Some((stamp, entry)) if !entry.present => Ok(Standing::Removed {
                by: entry_op(stamp),
            }),
            _ => Ok(Standing::Member),
        }
    }

    /// Logs `op`, which [`loggable`](Self::loggable) accepted, and judges everything its
    /// arrival can change; whether it was not logged yet.
    pub(crate) fn insert(&mut self, op: Box<SignedOp>) -> bool {
        let id = op.id();
        if self.nodes.contains(&id) {
            return false;
        }
        let (author, seq) = (op.op().author, op.op().seq);
        if matches!(op.op().body, Body::Create { .. }) {
            self.owner = Some(author);
        }
        if let Some((subject, _)) = op.op().body.subject() {
            let about = &mut self.members.entry(subject).or_default().about;
            room_for_one(about);
            about.push(id);
        }
        self.nodes.insert(Node {
            op,
            on_chain: false,
            effective: false,
        });
        if self.members.get(&author).is_some_and(|m| {
            m.rare()
                .pinned
                .as_ref()
                .is_some_and(|p| p.missing.contains(&id))
        }) {
            // A pinned operation arrived: its branch below is pinned from now on, and every
            // fork judged while it was missing must be judged again.
            self.forget_pins(author);
        }
        let own_key = match &self.node(&id).op.op().body {
            Body::Rotate { bundle }
            | Body::Create {
                founder: bundle, ..
            } => Some(bundle.encryption_key),
            _ => None,
        };
        let member = self.members.entry(author).or_default();
        if let Some(key) = own_key {
            member.own_keys.insert(key, ());
        }
        // How many operations were logged at `seq` before this one.
        let before = if member.chain.get(&seq).is_none() {
            member.chain.insert(seq, id);
            0
        } else {
            let others = member.rare_mut().forks.entry(seq).or_default();
            others.push(id);
            others.len()
        };
        match before {
            0 => self.mark(author, seq),
            1 => {
                // A new equivocation: both operations are judged again; a change of chain
                // standing propagates to the next sequence number from `judge`.
                self.mark(author, seq);
            }
            // One more op at an equivocated number changes no sibling's standing, except on
            // the owner's chain, where the earliest-stamped sibling stays on it.
            _ if self.owner == Some(author) => self.mark(author, seq),
            _ => self.judge(id),
        }
        self.settle();
        true
    }

    /// What changed in the view since the last call, and every member whose entry may have
    /// (a new bundle with the same key changes the entry, not the view's digest: it is not a
    /// [`Change`]).
    pub(crate) fn take_changes(&mut self) -> (Vec<Change>, Vec<MemberId>) {
        let journal = std::mem::take(&mut self.journal);
        let touched = journal.keys().copied().collect();
        let changes = journal
            .into_iter()
            .filter_map(|(member, was)| match (was, self.shown(&member)) {
                (None, Some(_)) => Some(Change::Added(member)),
                (Some(_), None) => Some(Change::Removed(member)),
                (Some((old_key, _)), Some((new_key, _))) if old_key != new_key => {
                    Some(Change::KeyRotated(member))
                }
                (Some((_, old_rank)), Some((_, new_rank))) if old_rank != new_rank => {
                    Some(Change::RankChanged(member))
                }
                _ => None,
            })
            .collect();
        (changes, touched)
    }

    fn mark(&mut self, author: MemberId, seq: u64) {
        let stratum = self.stratum(&author);
        self.dirty.insert((stratum, author, seq));
    }

    /// Marks `author`'s logged operations from `seq` up.
    fn mark_from(&mut self, author: MemberId, seq: u64) {
        let stratum = self.stratum(&author);
        if let Some(member) = self.members.get(&author) {
            let seqs = member.chain.keys_from(&seq).map(|s| (stratum, author, *s));
            self.dirty.extend(seqs);
        }
    }

    fn settle(&mut self) {
        while let Some((_, author, seq)) = self.dirty.pop_first() {
            let Some(member) = self.members.get(&author) else {
                continue;
            };
            let Some(&first) = member.chain.get(&seq) else {
                continue;
            };
            let others = member.rare().forks.get(&seq).cloned();
            self.judge(first);
            for id in others.into_iter().flatten() {
                self.judge(id);
            }
        }
    }

    /// Whether `id`, of `author`, is an ancestor-or-self of an operation a watermark names.
    fn is_pinned(&mut self, author: &MemberId, id: &OpId) -> bool {
        let Some(member) = self.members.get(author) else {
            return false;
        };
        if member.rare().pinned.is_none() {
            let mut pinned = Pinned::default();
            for (seq, pin) in member.rare().pins.keys() {
                let (mut at, mut at_seq) = (*pin, *seq);
                loop {
                    let Some(node) = self.nodes.get(&at) else {
                        pinned.missing.insert(at);
                        break;
                    };
                    let op = node.op.op();
                    // A watermark whose operation is another author's, or not at the number
                    // it claims, pins nothing; logged operations' predecessors always match.
                    if op.author != *author || op.seq != at_seq || !pinned.ops.insert(at) {
                        break;
                    }
                    (at, at_seq) = (op.prev, at_seq - 1);
                }
            }
            let member = self.members.get_mut(author).expect("looked up above");
            member.rare_mut().pinned = Some(pinned);
        }
        self.members[author]
            .rare()
            .pinned
            .as_ref()
            .is_some_and(|pinned| pinned.ops.contains(id))
    }

    /// The owner's operation on its chain at a forked `seq`: nothing can pin the owner's
    /// chain, so its fork is resolved by the owner's own claims: the genesis at 1, and
    /// above it, of the operations whose predecessor is on the chain, the earliest stamped.
    fn owner_branch(&self, seq: u64) -> Option<OpId> {
        let owner = self.owner?;
        let nodes = self
            .members
            .get(&owner)?
            .ids_at(seq)
            .map(|id| self.node(id));
        if seq == 1 {
            return nodes
                .filter(|n| matches!(n.op.op().body, Body::Create { .. }))
                .map(|n| n.op.id())
                .next();
        }
        nodes
            .filter(|n| self.nodes.get(&n.op.op().prev).is_some_and(|p| p.on_chain))
            .min_by_key(|n| n.op.stamp())
            .map(|n| n.op.id())
    }

    fn judge(&mut self, id: OpId) {
        let op = self.node(&id).op.op();
        let (author, seq, prev) = (op.author, op.seq, op.prev);
        let forked = self
            .members
            .get(&author)
            .is_some_and(|m| m.rare().forks.contains_key(&seq));
        let parent_on_chain = seq == 1 || self.nodes.get(&prev).is_some_and(|p| p.on_chain);
        let on_chain = parent_on_chain
            && (!forked
                || if self.owner == Some(author) {
                    self.owner_branch(seq) == Some(id)
                } else {
                    self.is_pinned(&author, &id)
                });
        let node = self.node(&id);
        let op = node.op.op();
        // The genesis enables its author: it is judged on its chain alone.
        let genesis = matches!(op.body, Body::Create { .. });
        let effective = on_chain && (genesis || self.enabled(&author, seq)) && self.authorized(op);
        let (was_on_chain, was_effective) = (node.on_chain, node.effective);
        if on_chain != was_on_chain {
            self.mark(author, seq + 1);
        }
        if (on_chain, effective) != (was_on_chain, was_effective) {
            // The table lends its elements only to read: a verdict that changes takes the
            // node out and puts it back.
            let mut node = self.nodes.take(&id).expect("judged ops are logged");
            node.on_chain = on_chain;
            node.effective = effective;
            self.nodes.insert(node);
        }
        if effective != was_effective {
            self.apply(id, effective);
        }
    }

    fn note(&mut self, member: MemberId) {
        if !self.unjournaled && !self.journal.contains_key(&member) {
            let shown = self.shown(&member);
            self.journal.insert(member, shown);
        }
    }

    fn offer_bundle(&mut self, bundle: &KeyBundle, on: bool) {
        let member = self.members.entry(bundle.member).or_default();
        let key = (bundle.created, bundle.encryption_key);
        if on {
            match member.bundles.get_mut(&key) {
                Some(count) => *count += 1,
                None => {
                    member.bundles.insert(key, 1);
                }
            }
        } else if let Some(count) = member.bundles.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                member.bundles.remove(&key);
            }
        }
    }

    fn set_standing(&mut self, member: MemberId, stamp: Stamp, entry: Entry, on: bool) {
        let standing = &mut self.members.entry(member).or_default().standing;
        if on {
            standing.insert(stamp, entry);
        } else {
            standing.remove(&stamp);
        }
    }

    /// Makes the effects of `id` count (`on`) or stop counting, and marks what they govern.
    fn apply(&mut self, id: OpId, on: bool) {
        let signed = SignedOp::clone(&self.node(&id).op);
        let (stamp, op) = (signed.stamp(), signed.op());
        match &op.body {
            Body::Create { founder, .. } => {
                self.note(op.author);
                let entry = Entry {
                    watermark: 0,
                    present: true,
                };
                self.set_standing(op.author, stamp, entry, on);
                self.offer_bundle(founder, on);
            }
            Body::Rotate { bundle } => {
                self.note(op.author);
                self.offer_bundle(bundle, on);
            }
            Body::Leave => {
                self.note(op.author);
                let entry = Entry {
                    watermark: op.seq,
                    present: false,
                };
                self.set_standing(op.author, stamp, entry, on);
                self.mark_from(op.author, op.seq + 1);
            }
            Body::Add { bundle, watermark } => {
                self.note(bundle.member);
                self.offer_bundle(bundle, on);
                self.subject_standing(bundle.member, stamp, *watermark, true, on);
            }
            Body::Remove { member, watermark } => {
                self.subject_standing(*member, stamp, *watermark, false, on);
            }
            Body::Rank {
                member,
                rank,
                watermark,
            } => {
                self.note(*member);
                let grants = &mut self.members.entry(*member).or_default().rare_mut().grants;
                if on {
                    grants.insert((op.seq, id), (watermark.seq, *rank));
                } else {
                    grants.remove(&(op.seq, id));
                }
                self.pin(*member, watermark.op, watermark.seq, on);
                self.mark_from(*member, watermark.seq + 1);
                // Whether it has ever been an admin decides who may add or remove it.
                let about = self.members[member].about.clone();
                for other in about {
                    let op = self.node(&other).op.op();
                    self.mark(op.author, op.seq);
                }
            }
        }
    }

    /// An add or remove of `subject` starts or stops counting.
    fn subject_standing(
        &mut self,
        subject: MemberId,
        stamp: Stamp,
        watermark: Watermark,
        present: bool,
        on: bool,
    ) {
        self.note(subject);
        let entry = Entry {
            watermark: watermark.seq,
            present,
        };
        self.set_standing(subject, stamp, entry, on);
        self.pin(subject, watermark.op, watermark.seq, on);
        self.mark_from(subject, watermark.seq + 1);
    }

    fn pin(&mut self, member: MemberId, op: OpId, seq: u64, on: bool) {
        if seq == 0 {
            return;
        }
        let entry = self.members.entry(member).or_default();
        toggle(&mut entry.rare_mut().pins, (seq, op), on);
        self.pin_epoch += 1;
        self.forget_pins(member);
    }

    /// Drops `member`'s cached pinned branches and judges its forks again.
    fn forget_pins(&mut self, member: MemberId) {
        let Some(entry) = self.members.get_mut(&member) else {
            return;
        };
        let Some(rare) = &mut entry.rare else {
            return;
        };
        rare.pinned = None;
        let forks: Vec<u64> = rare.forks.keys().copied().collect();
        for seq in forks {
            self.mark(member, seq);
        }
    }
}
