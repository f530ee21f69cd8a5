//! A replica of one group: the ingest pipeline, local actions, and queries.

use super::authority::{Authority, Change};
use super::branches::{self, Branches};
use super::error::{ActionError, IngestError};
use super::op::{Body, GroupId, InvalidOp, Op, OpId, Rank, SignedOp, Stamp, Watermark};
use super::pen::Pen;
use super::standing::{PositionError, Standing};
use super::sync::{AuthorIndex, Summary};
use super::view::View;
use crate::clock::{Clock, ClockConfig, ClockError, Timestamp};
use crate::keys::{EncryptionKey, Identity, KeyBundle, MemberId, SignedMessage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Operations whose signatures one batch verification checks. A batch check holds about a
/// kilobyte per signature while it runs; chunks bound that to a few MiB whatever the batch's
/// size (a snapshot of 100,000 operations is one batch). Smaller chunks cost time: at 1,024
/// operations a 10,000-operation batch took 12% longer than in one check, at 4,096 as long
/// (`cargo bench --bench footprint`). The verdicts do not depend on it: a batch passes
/// exactly when each of its signatures does.
const VERIFY_CHUNK: usize = 4096;

/// Settings of a [`Replica`]. They are the caller's: a snapshot does not carry them.
///
/// What an author can make a replica store: operations enter the log only while their author
/// is enabled (admitted by an add that takes effect, and not removed as of their sequence
/// number) or vouched for, their predecessor is logged, and they are not off a branch a
/// watermark pins. Everything else waits in a pen: future-dated operations in the held pen;
/// the others (removed author, missing predecessor, off a pinned branch) in the quarantine,
/// or, for authors never admitted, in a strangers' pen of the same size that is neither
/// summarised nor offered. So a removed member, once the replica holds its removal and the
/// branch it pins, can make a replica keep at most `quarantine_per_author` of its operations;
/// anyone it names in void adds as many in the strangers' pen; and no key of theirs is
/// admitted. (Before its removal reaches a replica, a member can make it log equivocations at
/// numbers where it is enabled, voiding its own chain from the fork: `spec/membership.md`,
/// "Threat model".)
///
/// The pens bound what any author can make a replica store before its operations can be
/// logged. In each pen, no author holds more than its per-author quota, and when the pen is
/// full an insertion drops an operation of whoever holds the most (the inserting author on a
/// tie), so one author, or a crowd of fresh identities, can push out only its own
/// operations, never those of an author holding fewer. Every operation encodes to under
/// 1 KiB, so each pen holds under `limit` KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaConfig {
    /// The hybrid logical clock's settings, including the drift bound beyond which incoming
    /// operations are held back.
    pub clock: ClockConfig,
    /// How many operations that cannot be logged yet (author not enabled, predecessor
    /// missing) are kept, at most, in each of the two pens (admitted authors', strangers').
    pub quarantine_limit: usize,
    /// How many of those one author may have kept, at most; beyond it, the one furthest
    /// along its chain goes.
    pub quarantine_per_author: usize,
    /// How many future-dated operations are kept until local time catches up, at most.
    pub held_limit: usize,
    /// How many of those one author may have kept, at most; beyond it, its furthest-future
    /// operation goes.
    pub held_per_author: usize,
}

impl Default for ReplicaConfig {
    /// Five minutes of drift; pens of 1,024 operations (under 1 MiB) each, at most 128 of
    /// them from any one author.
    fn default() -> Self {
        Self {
            clock: ClockConfig::default(),
            quarantine_limit: 1024,
            quarantine_per_author: 128,
            held_limit: 1024,
            held_per_author: 128,
        }
    }
}

/// Where an operation comes from. This replica's own operations are stamped by its own
/// clock, which may run ahead of local physical time (it has received stamps from clocks
/// that run ahead): they are never held back, or the author's next operation would reuse
/// their sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Local,
    Remote,
}

/// What became of an incoming operation that was not refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Entered the log. Whether it takes effect is [`Replica::is_effective`]: that can change
    /// as other operations arrive (a removal whose watermark is below it voids it).
    Logged,
    /// Already held in the log, the quarantine or the held-back set.
    Duplicate,
    /// Stamped further ahead of local time than the drift bound: held back, and logged by
    /// [`Replica::advance`] once local time has caught up.
    Held,
    /// Its author is not enabled at its sequence number (never admitted, or removed as of
    /// it), or its predecessor is not logged yet: kept in the bounded quarantine and logged
    /// when that changes.
    Quarantined,
    /// Not kept: it would have been held or quarantined, but its author already has its
    /// share of that pen (see [`ReplicaConfig`]), or it names as predecessor a logged
    /// operation that is not its author's previous one, so it can never be on a chain.
    /// Nothing usable is lost to the group: sync delivers it again from any replica that
    /// holds it.
    Dropped,
}

/// The result of ingesting one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// What became of the operation.
    pub status: Status,
    /// What changed in the view, possibly through operations it released.
    pub changes: Vec<Change>,
}

/// The result of ingesting a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchReport {
    /// One entry per operation, in the order given.
    pub results: Vec<Result<Status, IngestError>>,
    /// What changed in the view.
    pub changes: Vec<Change>,
}

/// What [`Replica::ingest_boxes`] did with a batch.
pub(crate) struct Boxes {
    /// Each operation's status, in batch order; `None` if it was refused.
    pub(crate) statuses: Vec<Option<Status>>,
    /// What changed in the view.
    pub(crate) changes: Vec<Change>,
    /// The refused operations, and why, in batch order.
    pub(crate) refused: Vec<(SignedOp, IngestError)>,
}

/// An operation of a batch waiting to be logged, with what the rounds of
/// [`Replica::admit`] read of it after it has been logged.
struct Slot {
    /// Its place in the batch; `None` for an operation released from a pen.
    position: Option<usize>,
    author: MemberId,
    seq: u64,
    /// Emptied when it is logged.
    op: Option<Box<SignedOp>>,
    /// It can never be logged; it goes at the round's end.
    dropped: bool,
}

impl Slot {
    fn new(position: Option<usize>, op: Box<SignedOp>) -> Self {
        Self {
            position,
            author: op.op().author,
            seq: op.op().seq,
            op: Some(op),
            dropped: false,
        }
    }

    /// Its operation's id; the slot must be full.
    fn id(&self) -> OpId {
        self.op.as_ref().expect("a full slot").id()
    }
}

/// The unlogged operations of a round: its slots, in chain order, and the pens.
struct Unlogged<'a> {
    waiting: &'a [Slot],
    pens: [&'a Pen<(u64, OpId)>; 2],
}

impl branches::Unlogged for Unlogged<'_> {
    fn prev_of(&self, id: &OpId, author: &MemberId, seq: u64) -> Option<OpId> {
        let from = self
            .waiting
            .partition_point(|slot| (&slot.author, slot.seq) < (author, seq));
        let waiting = self.waiting[from..]
            .iter()
            .take_while(|slot| (&slot.author, slot.seq) == (author, seq))
            .filter_map(|slot| slot.op.as_deref())
            .filter(|op| op.id() == *id);
        let pens = self.pens.iter().filter_map(|pen| pen.get(id));
        waiting
            .chain(pens)
            .find(|op| (&op.op().author, op.op().seq) == (author, seq))
            .map(|op| op.op().prev)
    }
}

/// One device's replica of a group's membership.
///
/// The view is a pure function of the set of operations logged: every replica that has
/// logged the same operations shows the same view and digest, whatever the order and
/// duplication of delivery.
///
/// ```
/// use splitsafe::group::{Replica, ReplicaConfig, Change};
/// use splitsafe::keys::{EncryptionKey, Identity};
/// use splitsafe::clock::Timestamp;
///
/// let alice = Identity::from_secret_bytes([1; 32]);
/// let bob = Identity::from_secret_bytes([2; 32]);
/// let now = 1_795_694_400_000;
/// let bundle = |who: &Identity| who.bundle(EncryptionKey([9; 32]), Timestamp::from_physical(now));
///
/// let (mut at_alice, genesis) =
///     Replica::create(&alice, bundle(&alice), [0; 16], ReplicaConfig::default(), now).unwrap();
/// let (add_bob, changes) = at_alice.add(&alice, bundle(&bob), now + 1).unwrap();
/// assert_eq!(changes, vec![Change::Added(bob.id())]);
///
/// // Bob's device learns of the group and catches up, in any order.
/// let mut at_bob = Replica::join(&genesis, ReplicaConfig::default(), now + 2).unwrap();
/// at_bob.ingest_bytes(&add_bob.to_cbor(), now + 2).unwrap();
/// assert_eq!(at_bob.view().digest(), at_alice.view().digest());
/// ```
#[derive(Clone, Debug)]
pub struct Replica {
    group: GroupId,
    config: ReplicaConfig,
    clock: Clock,
    authority: Authority,
    index: AuthorIndex,
    /// Keyed by stamp: an author over its quota loses its furthest-future operation.
    held: Pen<Stamp>,
    /// Keyed by sequence number: an author over its quota loses its furthest operation
    /// along its chain (the last one it could log), whatever the arrival order, so what a
    /// replica keeps is a function of what it was offered. Only authors ever admitted.
    quarantine: Pen<(u64, OpId)>,
    /// The same for authors never admitted (an add of them may be on its way, or they are
    /// strangers): neither summarised nor offered, and apart, so that no crowd of strangers
    /// can push an admitted author's operation out.
    strangers: Pen<(u64, OpId)>,
    /// The founder, named by the genesis (whose id is the group's), held from the start.
    owner: MemberId,
    /// Kept up to date with each change (see [`take_changes`](Self::take_changes)).
    view: View,
    /// Where each operation went since the last [`take_placements`](Self::take_placements)
    /// (logged, held, quarantined, dropped), recorded only when a store asked for it (`None`
    /// otherwise, so nothing grows).
    placements: Option<Vec<(SignedOp, Status)>>,
}

impl Replica {
    fn empty(genesis: &SignedOp, config: ReplicaConfig, clock: Clock) -> Self {
        Self {
            group: GroupId(genesis.id().0),
            owner: genesis.op().author,
            strangers: Pen::new(config.quarantine_limit, config.quarantine_per_author),
            config,
            clock,
            authority: Authority::default(),
            index: AuthorIndex::default(),
            held: Pen::new(config.held_limit, config.held_per_author),
            quarantine: Pen::new(config.quarantine_limit, config.quarantine_per_author),
            view: View::new(GroupId(genesis.id().0), std::iter::empty()),
            placements: None,
        }
    }

    /// Founds a group with `founder` as its owner and only member; returns the replica and the genesis
    /// operation that others [`join`](Self::join) from. `nonce` (random bytes from the
    /// caller) keeps two groups founded at the same moment apart.
    ///
    /// # Errors
    ///
    /// [`ActionError::BadBundle`] if `bundle` is not the founder's or does not verify.
    pub fn create(
        founder: &Identity,
        bundle: KeyBundle,
        nonce: [u8; 16],
        config: ReplicaConfig,
        physical_ms: u64,
    ) -> Result<(Self, SignedOp), ActionError> {
        if bundle.member != founder.id() {
            return Err(ActionError::BadBundle(InvalidOp::FounderNotAuthor.into()));
        }
        bundle
            .verify()
            .map_err(|e| ActionError::BadBundle(e.into()))?;
        let mut clock = Clock::new(config.clock);
        let genesis = Op {
            group: Op::NO_GROUP,
            author: founder.id(),
            seq: 1,
            prev: Op::NO_PREV,
            timestamp: clock.send(physical_ms),
            body: Body::Create {
                nonce,
                founder: bundle,
            },
        }
        .sign(founder);
        let mut replica = Self::empty(&genesis, config, clock);
        replica.admit(vec![Box::new(genesis.clone())], physical_ms, Origin::Local);
        Ok((replica, genesis))
    }

    /// A replica of the group founded by `genesis`, holding only the genesis.
    ///
    /// # Errors
    ///
    /// [`IngestError`] if `genesis` is not a valid, correctly signed `Create`.
    pub fn join(
        genesis: &SignedOp,
        config: ReplicaConfig,
        physical_ms: u64,
    ) -> Result<Self, IngestError> {
        if !matches!(genesis.op().body, Body::Create { .. }) {
            return Err(InvalidOp::NotGenesis.into());
        }
        let mut replica = Self::empty(genesis, config, Clock::new(config.clock));
        replica.ingest(genesis.clone(), physical_ms)?;
        Ok(replica)
    }

    /// The group's id.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The replica's settings.
    pub fn config(&self) -> ReplicaConfig {
        self.config
    }

    /// The replica's hybrid logical clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A stamp for a local event such as sending a message, from this replica's clock.
    pub fn stamp(&mut self, physical_ms: u64) -> Timestamp {
        self.clock.send(physical_ms)
    }

    /// Receives a stamp seen on something other than an operation (an opened message), so
    /// that this replica's next stamps come after it.
    ///
    /// # Errors
    ///
    /// [`ClockError::TooFarAhead`] if `stamp` is beyond the drift bound at `physical_ms`;
    /// the clock is then unchanged.
    pub fn observe(&mut self, stamp: Timestamp, physical_ms: u64) -> Result<(), ClockError> {
        self.clock.receive(stamp, physical_ms).map(drop)
    }

    /// The current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The current view computed again from the engine's state, member by member: what
    /// [`view`](Self::view), kept up to date one change at a time, must always equal (the
    /// laws check it; not for applications).
    #[doc(hidden)]
    pub fn view_from_scratch(&self) -> View {
        View::new(self.group, self.authority.view())
    }

    /// Whether `member` is in the current view.
    pub fn is_member(&self, member: &MemberId) -> bool {
        self.authority.is_member(member)
    }

    /// `member`'s rank: the owner's, or the last one the owner granted it (a removal does
    /// not change it), or [`Rank::Member`].
    pub fn rank(&self, member: &MemberId) -> Rank {
        self.authority.rank(member)
    }

    /// The group's owner (its founder), named by the genesis the replica was made from,
    /// whether or not the genesis is logged yet (a future-dated one is held).
    pub fn owner(&self) -> MemberId {
        self.owner
    }

    /// Whether the logged operation `id` takes effect; `None` if it is not logged.
    pub fn is_effective(&self, id: &OpId) -> Option<bool> {
        self.authority.is_effective(id)
    }

    /// `member`'s position on its own chain as this replica knows it (logged or
    /// quarantined): what a message this replica's member seals records, and what an
    /// operation about `member` records as its watermark.
    pub fn position(&self, member: &MemberId) -> Watermark {
        self.watermark(member)
    }

    /// Judges `sender` as the sender of a message sealed at `position`, its claimed chain
    /// head: a member now; removed, by an operation that had seen the position; or sealed at
    /// a position the group voids (see [`Standing`]).
    ///
    /// # Errors
    ///
    /// [`PositionError`] if the sender was never a member, or the position names an
    /// operation not logged here (sync first) or not on the sender's chain.
    pub fn standing(
        &self,
        sender: &MemberId,
        position: Watermark,
    ) -> Result<Standing, PositionError> {
        self.authority.standing_at(sender, position)
    }

    /// Every encryption key `member` has published, current or not, so that messages sealed
    /// under a since-rotated key can still be attributed: keys from its adds that take
    /// effect, and, once an add of it has taken effect, from its own rotations, logged or
    /// quarantined, whether or not they take effect (each bundle is signed by the member, so
    /// the key is authentic; a rotation made concurrently with its removal is void but still
    /// names the key its messages of that time were sealed under). A void add admits no key.
    pub fn published_keys(&self, member: &MemberId) -> impl Iterator<Item = EncryptionKey> + '_ {
        let mut keys = self.authority.keys(member);
        if self.authority.admitted(member) {
            let rotations =
                self.quarantine
                    .of_author(member)
                    .filter_map(|op| match &op.op().body {
                        Body::Rotate { bundle } => Some(bundle.encryption_key),
                        _ => None,
                    });
            keys.extend(rotations);
        }
        keys.into_iter()
    }

    /// Members no longer in the view, with the stamp of the remove or leave that took them
    /// out.
    pub fn past_members(&self) -> impl Iterator<Item = (&MemberId, &Stamp)> + '_ {
        self.authority.past_members()
    }

    /// Logged operations in stamp order.
    pub fn ops(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.authority.ops()
    }

    /// Number of logged operations.
    pub fn op_count(&self) -> usize {
        self.authority.len()
    }

    /// Operations held back because they are future-dated, in stamp order.
    pub fn held(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.held.ops()
    }

    /// Operations quarantined because their author is not enabled at their sequence number
    /// or their predecessor is not logged: those of authors ever admitted, then those of
    /// authors never admitted, each in sequence-number order.
    pub fn quarantined(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.quarantine.ops().chain(self.strangers.ops())
    }

    /// Decodes and ingests one operation from untrusted bytes.
    ///
    /// # Errors
    ///
    /// As for [`ingest`](Self::ingest), plus [`IngestError::Decode`].
    pub fn ingest_bytes(
        &mut self,
        bytes: &[u8],
        physical_ms: u64,
    ) -> Result<Ingested, IngestError> {
        self.ingest(SignedOp::from_cbor(bytes)?, physical_ms)
    }

    /// Ingests one operation received at local physical time `physical_ms`.
    ///
    /// Checks, in order: right group, structure, signatures; then logs, holds back (future
    /// dated) or quarantines (author not enabled, predecessor missing) it.
    ///
    /// # Errors
    ///
    /// [`IngestError`] saying which check failed; the replica is then unchanged.
    pub fn ingest(&mut self, op: SignedOp, physical_ms: u64) -> Result<Ingested, IngestError> {
        let BatchReport {
            mut results,
            changes,
        } = self.ingest_batch(vec![op], physical_ms);
        let status = results.pop().unwrap_or(Ok(Status::Duplicate))?;
        Ok(Ingested { status, changes })
    }

    /// Ingests many operations at once, verifying their signatures in one Ed25519 batch.
    ///
    /// Operations are taken as a set: an `Add` in the batch admits its member's operations,
    /// and an operation its successors, in the same batch, whatever their order. Refused operations change nothing; the others
    /// are ingested.
    pub fn ingest_batch(&mut self, ops: Vec<SignedOp>, physical_ms: u64) -> BatchReport {
        let ops = ops.into_iter().map(Box::new).collect();
        let Boxes {
            statuses,
            changes,
            refused,
        } = self.ingest_boxes(ops, physical_ms);
        let mut refused = refused.into_iter().map(|(_, error)| error);
        let results = statuses
            .into_iter()
            .map(|status| status.ok_or_else(|| refused.next().expect("one error a refusal")))
            .collect();
        BatchReport { results, changes }
    }

    /// The batch pipeline of [`ingest_batch`](Self::ingest_batch), over boxed operations
    /// (a snapshot decodes into boxes, which become the log's nodes as they are: no second
    /// copy of the log is ever held). Returns each operation's status (`None`: refused),
    /// what changed, and the refused operations with their errors, in batch order
    /// ([`Boxes`]). Kept compact while it runs: a status byte an operation,
    /// not a 72-byte `Result`.
    #[allow(
        clippy::vec_box,
        reason = "each box becomes a node of the log as it is"
    )]
    pub(crate) fn ingest_boxes(&mut self, ops: Vec<Box<SignedOp>>, physical_ms: u64) -> Boxes {
        // An operation already held is a duplicate before any check: its id covers every
        // signed byte, so it is that operation again and changes nothing, and a replay of
        // what is held costs a lookup, not a signature check.
        let mut errors = BTreeMap::new();
        let mut statuses: Vec<Option<Status>> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| match self.holds(&op.id()) {
                true => Some(Status::Duplicate),
                false => match self.check(op) {
                    Ok(()) => Some(Status::Logged),
                    Err(e) => {
                        errors.insert(i, e);
                        None
                    }
                },
            })
            .collect();
        let fresh: Vec<usize> = (0..ops.len())
            .filter(|&i| statuses[i] == Some(Status::Logged))
            .collect();
        for chunk in fresh.chunks(VERIFY_CHUNK) {
            let messages: Vec<SignedMessage> = chunk
                .iter()
                .flat_map(|&i| ops[i].signed_messages())
                .collect();
            if SignedMessage::verify_batch(&messages).is_err() {
                for &i in chunk {
                    if let Err(e) = ops[i].verify() {
                        statuses[i] = None;
                        errors.insert(i, e.into());
                    }
                }
            }
        }
        let mut accepted = Vec::with_capacity(fresh.len());
        let mut positions = Vec::with_capacity(fresh.len());
        let mut refused = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            match statuses[i] {
                None => {
                    let error = errors.remove(&i).expect("a refusal has its error");
                    refused.push((*op, error));
                }
                Some(Status::Logged) => {
                    accepted.push(op);
                    positions.push(i);
                }
                Some(_) => {}
            }
        }
        let (admitted, changes) = self.admit(accepted, physical_ms, Origin::Remote);
        for (i, status) in positions.into_iter().zip(admitted) {
            statuses[i] = Some(status);
        }
        Boxes {
            statuses,
            changes,
            refused,
        }
    }

    fn place(&mut self, op: &SignedOp, status: Status) {
        if let Some(journal) = &mut self.placements {
            journal.push((op.clone(), status));
        }
    }

    /// From now on, records where each operation goes (see
    /// [`take_placements`](Self::take_placements)), for a store that keeps one row per
    /// operation held.
    pub(crate) fn record_placements(&mut self) {
        self.placements.get_or_insert_with(Vec::new);
    }

    /// Where operations went since the last call, in order (an operation can appear more
    /// than once: the last entry is where it is now): [`Status::Logged`], `Held`,
    /// `Quarantined` or `Dropped` (out of a pen, over its quota).
    pub(crate) fn take_placements(&mut self) -> Vec<(SignedOp, Status)> {
        self.placements
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// A replica rebuilt exactly from what a store recorded of `placements`: each operation
    /// put back where it was (logged, held or quarantined), without verifying or judging
    /// its admission again (the store is trusted as memory is), with the saved clock.
    ///
    /// `None` if the genesis of `group` is not among them.
    pub(crate) fn restore(
        group: GroupId,
        config: ReplicaConfig,
        clock: Timestamp,
        placements: Vec<(SignedOp, Status)>,
    ) -> Option<Self> {
        let genesis = placements
            .iter()
            .map(|(op, _)| op)
            .find(|op| matches!(op.op().body, Body::Create { .. }) && op.id().0 == group.0)?;
        let mut replica = Self::empty(genesis, config, Clock::resume(config.clock, clock));
        let (mut logged, mut quarantined) = (Vec::new(), Vec::new());
        for (op, status) in placements {
            match status {
                Status::Logged => logged.push((op.stamp(), Box::new(op))),
                Status::Held => {
                    replica.held.insert(op.stamp(), op);
                }
                Status::Quarantined => quarantined.push(op),
                Status::Duplicate | Status::Dropped => {}
            }
        }
        // In stamp order: an honest author stamps each operation after its predecessor and
        // after every operation it had seen (the add that enabled it, say), so most
        // operations are judged once, with what decides them already in place; in chain
        // order, an operation was judged before the add enabling its author, then again.
        // (The order is speed only: the engine's verdicts do not depend on it.)
        // Sorted as (stamp, box) pairs: moving 392-byte operations and recomputing keys
        // cost a sixth of reopening a device.
        logged.sort_unstable_by_key(|(stamp, _)| *stamp);
        // The view in one pass over the engine's members once all is in, not one member at
        // a time from a journal of every operation's changes.
        replica.authority.set_journaling(false);
        for (stamp, op) in logged {
            if replica.authority.insert(op) {
                replica.index.insert(stamp);
            }
        }
        replica.authority.set_journaling(true);
        for op in quarantined {
            replica.wait(op);
        }
        replica.view = replica.view_from_scratch();
        replica.restore_clock(clock);
        replica.record_placements();
        Some(replica)
    }

    /// Logs held-back operations that local time has now caught up with.
    pub fn advance(&mut self, physical_ms: u64) -> Vec<Change> {
        let clock = &self.clock;
        let due = self
            .held
            .take_where(|op| clock.check(op.op().timestamp, physical_ms).is_ok());
        let due = due.into_iter().map(Box::new).collect();
        self.admit(due, physical_ms, Origin::Remote).1
    }

    /// The checks that need no signature: structure, group, and the carried bundle's
    /// encryption key (the same rule local actions apply).
    fn check(&self, op: &SignedOp) -> Result<(), IngestError> {
        op.op().check_structure()?;
        let found = match op.op().body {
            Body::Create { .. } => GroupId(op.id().0),
            _ => op.op().group,
        };
        if found != self.group {
            return Err(IngestError::WrongGroup {
                expected: self.group,
                found,
            });
        }
        if let Some(bundle) = op.op().body.bundle() {
            bundle.check_encryption_key()?;
        }
        Ok(())
    }

    /// Whether the operation is logged, held back or waiting in a pen.
    fn holds(&self, id: &OpId) -> bool {
        self.authority.contains(id)
            || self.held.contains(id)
            || self.quarantine.contains(id)
            || self.strangers.contains(id)
    }

    /// Routes verified operations to the log, the held-back set or a pen.
    #[allow(
        clippy::vec_box,
        reason = "each box becomes a node of the log as it is"
    )]
    fn admit(
        &mut self,
        ops: Vec<Box<SignedOp>>,
        physical_ms: u64,
        origin: Origin,
    ) -> (Vec<Status>, Vec<Change>) {
        let mut statuses = Vec::with_capacity(ops.len());
        // Boxed: each operation's box becomes its node in the log, so a batch the size of
        // the log never holds a second copy of the log's operations while the log grows
        // (`Replica::load` then peaks at little more than what it leaves).
        let mut waiting: Vec<Slot> = Vec::with_capacity(ops.len());
        for op in ops {
            let status = if self.holds(&op.id()) {
                Status::Duplicate
            } else if origin == Origin::Remote
                && self.clock.check(op.op().timestamp, physical_ms).is_err()
            {
                let id = op.id();
                self.place(&op, Status::Held);
                let dropped = self.held.insert(op.stamp(), *op);
                for op in &dropped {
                    self.place(op, Status::Dropped);
                }
                if dropped.iter().all(|d| d.id() != id) {
                    Status::Held
                } else {
                    Status::Dropped
                }
            } else {
                waiting.push(Slot::new(Some(statuses.len()), op));
                Status::Logged
            };
            statuses.push(status);
        }
        // A second copy of an operation in the batch is a duplicate (a held one is told by
        // `holds`): sorted by id, the first copy in batch order stays. Sorting in place
        // costs no memory, a set of the ids seen would cost a twentieth of the log's.
        waiting.sort_unstable_by_key(|slot| (slot.id(), slot.position));
        waiting.dedup_by(|later, first| {
            let copy = later.id() == first.id();
            if let (true, Some(i)) = (copy, later.position) {
                statuses[i] = Status::Duplicate;
            }
            copy
        });

        // Log in rounds, each chain in order: an operation may wait for its predecessor or
        // for the add that enables its author, in this batch or in a pen. A round that
        // changed the pins is followed by another, so that what waits is judged against the
        // pins as they end up. Within a round, what waits stays in place (in chain order,
        // for the walks of pinned branches to find it); a logged operation's slot is
        // emptied, and the round's end keeps what still waits.
        loop {
            let epoch = self.authority.pin_epoch();
            // Unstable, with the id to break ties: a stable sort of a batch the size of the
            // log would borrow as much memory again.
            waiting.sort_unstable_by_key(|slot| (slot.author, slot.seq, slot.id()));
            let mut branches = Branches::default();
            let mut progress = false;
            for i in 0..waiting.len() {
                let unlogged = Unlogged {
                    waiting: &waiting,
                    pens: [&self.quarantine, &self.strangers],
                };
                let op = waiting[i]
                    .op
                    .as_deref()
                    .expect("every slot is full at a round's start");
                match self.loggable(op, &mut branches, &unlogged) {
                    Some(true) => {
                        let op = waiting[i].op.take().expect("just read");
                        // Within the drift bound when checked; a physical clock stepped back
                        // since can make the clock refuse it now, and then it simply does not
                        // advance the clock.
                        let _ = self.clock.receive(op.op().timestamp, physical_ms);
                        self.place(&op, Status::Logged);
                        let stamp = op.stamp();
                        if self.authority.insert(op) {
                            self.index.insert(stamp);
                        }
                        progress = true;
                    }
                    Some(false) => {}
                    None => {
                        self.place(op, Status::Dropped);
                        // Kept in its slot to the round's end: walks still pass through it.
                        waiting[i].dropped = true;
                        if let Some(i) = waiting[i].position {
                            statuses[i] = Status::Dropped;
                        }
                    }
                }
            }
            // What waits in the pens: released when it can be logged, dropped when it never
            // can (a predecessor that is not its author's previous operation was logged).
            // The walks see what was unlogged at the round's start; they may be stale now
            // that operations were logged and pins changed.
            branches.forget_walks();
            let mut verdicts = BTreeMap::new();
            let unlogged = Unlogged {
                waiting: &waiting,
                pens: [&self.quarantine, &self.strangers],
            };
            for op in self.quarantine.ops().chain(self.strangers.ops()) {
                let verdict = self.loggable(op, &mut branches, &unlogged);
                if verdict != Some(false) {
                    verdicts.insert(op.id(), verdict);
                }
            }
            waiting.retain(|slot| slot.op.is_some() && !slot.dropped);
            for pen in [&mut self.quarantine, &mut self.strangers] {
                for op in pen.take_where(|op| verdicts.contains_key(&op.id())) {
                    if verdicts[&op.id()].is_some() {
                        progress = true;
                        waiting.push(Slot::new(None, Box::new(op)));
                    } else if let Some(journal) = &mut self.placements {
                        journal.push((op, Status::Dropped));
                    }
                }
            }
            if !progress && epoch == self.authority.pin_epoch() {
                break;
            }
        }
        // Stable: operations released from a pen go back in the pens' order.
        waiting.sort_by_key(|slot| slot.position);
        for slot in waiting {
            let op = *slot.op.expect("only full slots are kept");
            let id = op.id();
            let dropped = self.wait(op);
            if let Some(i) = slot.position {
                statuses[i] = if dropped.iter().all(|d| d.id() != id) {
                    Status::Quarantined
                } else {
                    Status::Dropped
                };
            }
        }
        self.sort_pens();

        let changes = self.take_changes();
        (statuses, changes)
    }

    /// Whether `op` can enter the log now (see [`Authority::loggable`]), and not only off
    /// every pinned branch (see [`Branches`]).
    fn loggable(
        &self,
        op: &SignedOp,
        branches: &mut Branches,
        unlogged: &Unlogged<'_>,
    ) -> Option<bool> {
        let verdict = self.authority.loggable(op)?;
        Some(verdict && !branches.off_pinned(&self.authority, unlogged, op))
    }

    /// Puts an operation that cannot be logged yet in its pen: the quarantine if its author
    /// was ever admitted, else the strangers' pen. Returns what the pen dropped.
    fn wait(&mut self, op: SignedOp) -> Vec<SignedOp> {
        let key = (op.op().seq, op.id());
        self.place(&op, Status::Quarantined);
        let dropped = if self.authority.admitted(&op.op().author) {
            self.quarantine.insert(key, op)
        } else {
            self.strangers.insert(key, op)
        };
        for op in &dropped {
            self.place(op, Status::Dropped);
        }
        dropped
    }

    /// Moves waiting operations whose author's admission changed to the other pen, so that
    /// no crowd of strangers can push out an admitted author's operation.
    fn sort_pens(&mut self) {
        let authority = &self.authority;
        let admitted = self
            .strangers
            .take_where(|op| authority.admitted(&op.op().author));
        let strangers = self
            .quarantine
            .take_where(|op| !authority.admitted(&op.op().author));
        for op in admitted.into_iter().chain(strangers) {
            self.wait(op);
        }
    }

    /// Signs and logs `author`'s next operation, if it would take effect.
    fn act(
        &mut self,
        author: &Identity,
        body: Body,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        let id = author.id();
        if !self.is_member(&id) {
            return Err(ActionError::NotAMember(id));
        }
        let (seq, prev) = self
            .authority
            .head(&id)
            .map_or((1, Op::NO_PREV), |(seq, op)| (seq + 1, op));
        let mut op = Op {
            group: self.group,
            author: id,
            seq,
            prev,
            timestamp: Timestamp::ZERO,
            body,
        };
        if !self.authority.would_take_effect(&op) {
            return Err(ActionError::NotPermitted {
                author: id,
                rank: self.rank(&id),
                action: op.body.action(),
                subject: op.body.subject().map(|(member, _)| member),
            });
        }
        op.timestamp = self.clock.send(physical_ms);
        let op = op.sign(author);
        let (_, changes) = self.admit(vec![Box::new(op.clone())], physical_ms, Origin::Local);
        Ok((op, changes))
    }

    /// What this replica has seen of `member`'s chain, logged or quarantined: the watermark
    /// of an operation about it. Quarantined operations count: a removed member's operations
    /// wait there, and a re-add must vouch for them so they stay void and the member's next
    /// operations can follow them.
    fn watermark(&self, member: &MemberId) -> Watermark {
        let (mut seq, mut op) = self.authority.head(member).unwrap_or((0, Op::NO_PREV));
        loop {
            let mut next = self
                .quarantine
                .of_author(member)
                .chain(self.strangers.of_author(member))
                .filter(|q| q.op().seq == seq + 1 && q.op().prev == op);
            // A fork pins neither branch: the watermark stops below it.
            match (next.next(), next.next()) {
                (Some(next), None) => (seq, op) = (seq + 1, next.id()),
                _ => break,
            }
        }
        if seq == 0 {
            Watermark::NONE
        } else {
            Watermark { seq, op }
        }
    }

    /// `author` adds (or re-adds) the member whose self-signed `bundle` this is.
    ///
    /// The owner may add anyone; an admin may add anyone who has never been an admin. The
    /// operation records what this replica has seen of the member's chain, so that on a
    /// re-add the member's operations made while it was out stay void.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member;
    /// [`ActionError::NotPermitted`] if its rank does not allow it;
    /// [`ActionError::BadBundle`] if the bundle does not verify or is the author's own.
    pub fn add(
        &mut self,
        author: &Identity,
        bundle: KeyBundle,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        bundle
            .verify()
            .map_err(|e| ActionError::BadBundle(e.into()))?;
        if bundle.member == author.id() {
            return Err(ActionError::BadBundle(InvalidOp::SelfSubject.into()));
        }
        let watermark = self.watermark(&bundle.member);
        self.act(author, Body::Add { bundle, watermark }, physical_ms)
    }

    /// `author` removes `member` (itself: leaves). The owner may remove anyone else; an
    /// admin anyone who has never been an admin. The operation records what this replica
    /// has seen of the member's chain: the member's operations above it are void.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member;
    /// [`ActionError::NotPermitted`] if its rank does not allow it.
    pub fn remove(
        &mut self,
        author: &Identity,
        member: MemberId,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        if member == author.id() {
            return self.leave(author, physical_ms);
        }
        let watermark = self.watermark(&member);
        self.act(author, Body::Remove { member, watermark }, physical_ms)
    }

    /// `author` leaves the group; its own later operations are void.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member;
    /// [`ActionError::NotPermitted`] for the owner, who cannot leave.
    pub fn leave(
        &mut self,
        author: &Identity,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        self.act(author, Body::Leave, physical_ms)
    }

    /// The owner makes `member` an admin. The member's operations above what this replica
    /// has seen of its chain hold admin rank.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member;
    /// [`ActionError::NotPermitted`] unless `author` is the owner and `member` someone else.
    pub fn promote(
        &mut self,
        author: &Identity,
        member: MemberId,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        self.set_rank(author, member, Rank::Admin, physical_ms)
    }

    /// The owner makes `member` a plain member again. The member's operations above what
    /// this replica has seen of its chain have no admin authority, whatever their stamp.
    ///
    /// # Errors
    ///
    /// As for [`promote`](Self::promote).
    pub fn demote(
        &mut self,
        author: &Identity,
        member: MemberId,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        self.set_rank(author, member, Rank::Member, physical_ms)
    }

    fn set_rank(
        &mut self,
        author: &Identity,
        member: MemberId,
        rank: Rank,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        if member == author.id() {
            return Err(ActionError::NotPermitted {
                author: member,
                rank: self.rank(&member),
                action: "change the rank of",
                subject: Some(member),
            });
        }
        let watermark = self.watermark(&member);
        let body = Body::Rank {
            member,
            rank,
            watermark,
        };
        self.act(author, body, physical_ms)
    }

    /// `author` publishes its own new encryption key.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member;
    /// [`ActionError::BadBundle`] if the bundle is someone else's or does not verify.
    pub fn rotate(
        &mut self,
        author: &Identity,
        bundle: KeyBundle,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        if bundle.member != author.id() {
            return Err(ActionError::BadBundle(
                InvalidOp::RotateForeignBundle.into(),
            ));
        }
        bundle
            .verify()
            .map_err(|e| ActionError::BadBundle(e.into()))?;
        self.act(author, Body::Rotate { bundle }, physical_ms)
    }

    /// A compact summary of the operations held, logged or quarantined, for a peer to answer
    /// with
    /// [`missing_for`](Self::missing_for).
    pub fn summary(&self) -> Summary {
        // What the replica holds, quarantined or logged, so that two replicas holding one
        // set of operations (whichever of them each could log) have one summary; of
        // admitted authors only.
        let waiting = self.quarantine.ops().chain(self.strangers.ops());
        let waiting = waiting
            .map(SignedOp::stamp)
            .filter(|stamp| self.authority.admitted(&stamp.author));
        let admitted = self.authority.admitted_in_order();
        self.index.summary(self.group, waiting, admitted)
    }

    /// `author`'s operations the summary counts, logged or waiting, in stamp order.
    fn stamps_of(&self, author: &MemberId) -> Vec<Stamp> {
        let waiting = self
            .quarantine
            .of_author(author)
            .chain(self.strangers.of_author(author));
        let mut stamps: Vec<Stamp> = self
            .authority
            .stamps_of(author)
            .chain(waiting.map(SignedOp::stamp))
            .collect();
        stamps.sort_unstable();
        stamps
    }

    /// The operations, logged or quarantined, that a peer with summary `peer` may lack, per
    /// the rules of [`Summary`]. Quarantined ones are offered too: one may be what the peer's
    /// own quarantine waits for (a predecessor, or the add that enables an author).
    ///
    /// # Errors
    ///
    /// [`IngestError::WrongGroup`] if the summary is of another group.
    pub fn missing_for(&self, peer: &Summary) -> Result<Vec<SignedOp>, IngestError> {
        self.missing_given(&self.summary(), peer)
    }

    /// [`missing_for`](Self::missing_for), `mine` being this replica's
    /// [`summary`](Self::summary) already made (a summary walks every author).
    pub(crate) fn missing_given(
        &self,
        mine: &Summary,
        peer: &Summary,
    ) -> Result<Vec<SignedOp>, IngestError> {
        if peer.group != self.group {
            return Err(IngestError::WrongGroup {
                expected: self.group,
                found: peer.group,
            });
        }
        Ok(mine
            .missing_for(peer, |author| self.stamps_of(author))
            .iter()
            .filter_map(|stamp| {
                self.authority
                    .get(stamp)
                    .or_else(|| self.quarantine.get(&stamp.op))
                    .cloned()
            })
            .collect())
    }

    /// What changed in the view since the last call; brings the view up to date with every
    /// member the engine touched.
    fn take_changes(&mut self) -> Vec<Change> {
        let (changes, touched) = self.authority.take_changes();
        for member in touched {
            self.view.set(member, self.authority.shown(&member));
        }
        changes
    }

    /// Sets the clock to a saved state (loading a snapshot is not receiving anything), but
    /// never below the newest logged stamp: a saved clock that low is not one this replica
    /// could have had, and stamping below a logged operation would break the clock's promise.
    pub(crate) fn restore_clock(&mut self, saved: Timestamp) {
        let floor = self.authority.newest().map_or(Timestamp::ZERO, |newest| {
            Timestamp::from_raw(newest.as_raw().saturating_add(1))
        });
        self.clock = Clock::resume(self.config.clock, saved.max(floor));
    }
}
