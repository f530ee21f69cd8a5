//! A replica of one group: the ingest pipeline, local actions, and queries.

use super::error::{ActionError, IngestError};
use super::fold::{Change, Fold};
use super::op::{Body, GroupId, InvalidOp, Op, SignedOp, Stamp};
use super::pen::{Evict, Pen};
use super::sync::{AuthorIndex, Summary};
use super::view::View;
use crate::clock::{Clock, ClockConfig, ClockError, Timestamp};
use crate::keys::{EncryptionKey, Identity, KeyBundle, MemberId, SignedMessage};
use crate::lww::LwwSet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// Settings of a [`Replica`]. They are the caller's: a snapshot does not carry them.
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
    /// How many operations from authors no `Add` has named yet are kept, at most.
    pub quarantine_limit: usize,
    /// How many of those one author may have kept, at most; beyond it, its oldest goes.
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

/// What became of an incoming operation that was not refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Entered the log (whether or not its author was authorized at its stamp).
    Logged,
    /// Already held in the log, the quarantine or the held-back set.
    Duplicate,
    /// Stamped further ahead of local time than the drift bound: held back, and logged by
    /// [`Replica::advance`] once local time has caught up.
    Held,
    /// Its author has not been named by any `Add`: kept in the bounded quarantine and logged
    /// when such an `Add` arrives.
    Quarantined,
    /// It would have been held or quarantined, but its author already has its share of that
    /// pen (see [`ReplicaConfig`]), so it was not kept. Nothing is lost to the group: sync
    /// delivers it again from any replica that logged it.
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
    fold: Fold,
    index: AuthorIndex,
    /// Every encryption key each member has published in a logged operation, authorized or
    /// not: a bundle is signed by its member, so its key is authentic either way. Its keys
    /// are also the admitted members: those a logged `Add` or the `Create` named (a `Rotate`
    /// is logged only for an admitted author), whose operations enter the log.
    published: BTreeMap<MemberId, BTreeSet<EncryptionKey>>,
    /// Keyed by stamp: an author over its quota loses its furthest-future operation.
    held: Pen<Stamp>,
    /// Keyed by arrival order: an author over its quota loses its oldest operation.
    quarantine: Pen<u64>,
    arrivals: u64,
    view: OnceLock<View>,
}

impl Replica {
    fn empty(group: GroupId, config: ReplicaConfig, clock: Clock) -> Self {
        Self {
            group,
            config,
            clock,
            fold: Fold::default(),
            index: AuthorIndex::default(),
            published: BTreeMap::new(),
            held: Pen::new(config.held_limit, config.held_per_author, Evict::Greatest),
            quarantine: Pen::new(
                config.quarantine_limit,
                config.quarantine_per_author,
                Evict::Least,
            ),
            arrivals: 0,
            view: OnceLock::new(),
        }
    }

    /// Founds a group with `founder` as its only member; returns the replica and the genesis
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
            timestamp: clock.send(physical_ms),
            body: Body::Create {
                nonce,
                founder: bundle,
            },
        }
        .sign(founder);
        let mut replica = Self::empty(GroupId(genesis.id().0), config, clock);
        replica.admit(vec![genesis.clone()], physical_ms);
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
        let mut replica = Self::empty(GroupId(genesis.id().0), config, Clock::new(config.clock));
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

    /// The current view, computed once per change.
    pub fn view(&self) -> &View {
        self.view
            .get_or_init(|| View::new(self.group, self.fold.members()))
    }

    /// Whether `member` is in the current view.
    pub fn is_member(&self, member: &MemberId) -> bool {
        self.fold.is_member(member)
    }

    /// Whether `member` was in the group once every operation stamped at or before `at` is
    /// taken into account, as far as this replica knows.
    pub fn was_member(&self, member: &MemberId, at: Timestamp) -> bool {
        self.fold.was_member_at(member, Stamp::last_at(at))
    }

    /// Every encryption key `member` has published in a logged operation, current or not,
    /// so that messages sealed under a since-rotated key can still be attributed.
    pub fn published_keys(&self, member: &MemberId) -> impl Iterator<Item = &EncryptionKey> + '_ {
        self.published.get(member).into_iter().flatten()
    }

    /// Members no longer in the view, with the stamp of the operation that removed them.
    pub fn past_members(&self) -> impl Iterator<Item = (&MemberId, &Stamp)> + '_ {
        self.fold.past_members()
    }

    /// The member set as the fold maintains it: an [`LwwSet`] whose entries are the applied
    /// adds and removes.
    pub fn member_set(&self) -> &LwwSet<MemberId, Stamp> {
        self.fold.member_set()
    }

    /// Logged operations in stamp order.
    pub fn ops(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.fold.ops()
    }

    /// Number of logged operations.
    pub fn op_count(&self) -> usize {
        self.fold.len()
    }

    /// Operations held back because they are future-dated, in stamp order.
    pub fn held(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.held.ops()
    }

    /// Operations quarantined because no `Add` has named their author yet, oldest arrival
    /// first.
    pub fn quarantined(&self) -> impl Iterator<Item = &SignedOp> + '_ {
        self.quarantine.ops()
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
    /// dated) or quarantines (unknown author) it.
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
    /// Operations are taken as a set: an `Add` in the batch admits its member's operations in
    /// the same batch, whatever their order. Refused operations change nothing; the others
    /// are ingested.
    pub fn ingest_batch(&mut self, ops: Vec<SignedOp>, physical_ms: u64) -> BatchReport {
        let mut results: Vec<Result<Status, IngestError>> = ops
            .iter()
            .map(|op| self.check(op).map(|()| Status::Logged))
            .collect();
        let messages: Vec<SignedMessage> = ops
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .flat_map(|(op, _)| op.signed_messages())
            .collect();
        if SignedMessage::verify_batch(&messages).is_err() {
            for (op, result) in ops.iter().zip(&mut results) {
                if result.is_ok() {
                    if let Err(e) = op.verify() {
                        *result = Err(e.into());
                    }
                }
            }
        }
        let (accepted, positions): (Vec<SignedOp>, Vec<usize>) = ops
            .into_iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_ok())
            .map(|(i, op)| (op, i))
            .unzip();
        let (statuses, changes) = self.admit(accepted, physical_ms);
        for (i, status) in positions.into_iter().zip(statuses) {
            results[i] = Ok(status);
        }
        BatchReport { results, changes }
    }

    /// Logs held-back operations that local time has now caught up with.
    pub fn advance(&mut self, physical_ms: u64) -> Vec<Change> {
        let clock = &self.clock;
        let due = self
            .held
            .take_where(|op| clock.check(op.op().timestamp, physical_ms).is_ok());
        self.admit(due, physical_ms).1
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

    /// Routes verified operations to the log, the held-back set or the quarantine.
    fn admit(&mut self, ops: Vec<SignedOp>, physical_ms: u64) -> (Vec<Status>, Vec<Change>) {
        let mut statuses = Vec::with_capacity(ops.len());
        let mut waiting: Vec<(Option<usize>, SignedOp)> = Vec::new();
        let mut seen = BTreeSet::new();
        for op in ops {
            let id = op.id();
            let status = if self.fold.contains(&op.stamp())
                || self.held.contains(&id)
                || self.quarantine.contains(&id)
                || !seen.insert(id)
            {
                Status::Duplicate
            } else if self.clock.check(op.op().timestamp, physical_ms).is_err() {
                if self.held.insert(op.stamp(), op) {
                    Status::Held
                } else {
                    Status::Dropped
                }
            } else {
                waiting.push((Some(statuses.len()), op));
                Status::Logged
            };
            statuses.push(status);
        }

        // Admit in rounds: each logged `Add` may admit more authors, in this batch or in
        // the quarantine.
        let mut to_log = Vec::new();
        loop {
            let (ready, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(_, op)| {
                matches!(op.op().body, Body::Create { .. })
                    || self.published.contains_key(&op.op().author)
            });
            waiting = rest;
            if ready.is_empty() {
                break;
            }
            for (_, op) in ready {
                if let Some(bundle) = op.op().body.bundle() {
                    self.published
                        .entry(bundle.member)
                        .or_default()
                        .insert(bundle.encryption_key);
                }
                to_log.push(op);
            }
            let published = &self.published;
            waiting.extend(
                self.quarantine
                    .take_where(|op| published.contains_key(&op.op().author))
                    .into_iter()
                    .map(|op| (None, op)),
            );
        }
        for (position, op) in waiting {
            self.arrivals += 1;
            let kept = self.quarantine.insert(self.arrivals, op);
            if let Some(i) = position {
                statuses[i] = if kept {
                    Status::Quarantined
                } else {
                    Status::Dropped
                };
            }
        }

        for op in &to_log {
            // Within the drift bound when checked; a physical clock stepped back since can
            // make the clock refuse it now, and then it simply does not advance the clock.
            let _ = self.clock.receive(op.op().timestamp, physical_ms);
            self.index.insert(op.stamp());
        }
        let changes = self.fold.insert(to_log);
        if !changes.is_empty() {
            self.view = OnceLock::new();
        }
        (statuses, changes)
    }

    /// Signs and logs an operation of `author`'s.
    fn act(
        &mut self,
        author: &Identity,
        body: Body,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        if !self.is_member(&author.id()) {
            return Err(ActionError::NotAMember(author.id()));
        }
        let op = Op {
            group: self.group,
            author: author.id(),
            timestamp: self.clock.send(physical_ms),
            body,
        }
        .sign(author);
        let (_, changes) = self.admit(vec![op.clone()], physical_ms);
        Ok((op, changes))
    }

    /// `author` adds (or re-adds) the member whose self-signed `bundle` this is.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member;
    /// [`ActionError::BadBundle`] if the bundle does not verify.
    pub fn add(
        &mut self,
        author: &Identity,
        bundle: KeyBundle,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        bundle
            .verify()
            .map_err(|e| ActionError::BadBundle(e.into()))?;
        self.act(author, Body::Add { bundle }, physical_ms)
    }

    /// `author` removes `member` (itself: leaves).
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member.
    pub fn remove(
        &mut self,
        author: &Identity,
        member: MemberId,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        self.act(author, Body::Remove { member }, physical_ms)
    }

    /// `author` leaves the group.
    ///
    /// # Errors
    ///
    /// [`ActionError::NotAMember`] if `author` is not a member.
    pub fn leave(
        &mut self,
        author: &Identity,
        physical_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        self.remove(author, author.id(), physical_ms)
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

    /// A compact summary of the logged operations, for a peer to answer with
    /// [`missing_for`](Self::missing_for).
    pub fn summary(&self) -> Summary {
        self.index.summary(self.group)
    }

    /// The logged operations that a peer with summary `peer` may lack.
    ///
    /// # Errors
    ///
    /// [`IngestError::WrongGroup`] if the summary is of another group.
    pub fn missing_for(&self, peer: &Summary) -> Result<Vec<SignedOp>, IngestError> {
        if peer.group != self.group {
            return Err(IngestError::WrongGroup {
                expected: self.group,
                found: peer.group,
            });
        }
        Ok(self
            .index
            .missing_for(peer)
            .iter()
            .filter_map(|stamp| self.fold.get(stamp).cloned())
            .collect())
    }

    /// Sets the clock to a saved state (loading a snapshot is not receiving anything), but
    /// never below the newest logged stamp: a saved clock that low is not one this replica
    /// could have had, and stamping below a logged operation would break the clock's promise.
    pub(crate) fn restore_clock(&mut self, saved: Timestamp) {
        let floor = self.fold.ops().next_back().map_or(Timestamp::ZERO, |op| {
            Timestamp::from_raw(op.op().timestamp.as_raw().saturating_add(1))
        });
        self.clock = Clock::resume(self.config.clock, saved.max(floor));
    }
}
