//! Sender-key mode for one group: this member's own chain, bound to the view it was handed
//! to, and the chains other members handed it.
//!
//! A chain serves exactly one view. Before each message, the sender starts a new chain if
//! its view is no longer the one its chain was handed to (a member added, removed or gone,
//! a key rotated, its own included; a rank change too, since the view digest covers ranks),
//! or the chain has sealed [`ChainConfig::max_messages`] messages, or it is older than
//! [`ChainConfig::max_age_ms`]. The new chain's [`ChainHandoff`] travels in an ordinary
//! pairwise envelope sealed to the current view ([`Payload::Chain`]), so exactly that view
//! reads the chain's messages, and a removed member is cut off at the sender's next message
//! after it learns of the removal, as with pairwise envelopes.
//!
//! Messages are judged as envelopes are: the sender's position decides its standing
//! ([`Replica::standing`]), the reader's [`SenderPolicy`] decides whether it opens, and a
//! refusal changes nothing.

use super::chain::{ChainError, ChainHandoff, ChainId, ChainMessage, ReceivingChain, SendingChain};
use super::open::{adjust, check_claims, check_stamp};
use super::{Envelope, Keyring, Limits, OpenError, Opened, SealError, SealOptions, SenderPolicy};
use crate::clock::Timestamp;
use crate::group::{GroupId, Rank, Replica, View, ViewDigest};
use crate::keys::backup::{BackupError, FrameReader, FrameWriter};
use crate::keys::{EncryptionKey, Identity, MemberId};
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// When senders start new chains, and how receivers hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// Most messages one chain seals before its sender starts a new one.
    pub max_messages: u32,
    /// Longest a chain is used, in milliseconds, before its sender starts a new one.
    pub max_age_ms: u64,
    /// Receivers' skip window ([`ReceivingChain::DEFAULT_WINDOW`]).
    pub window: u32,
    /// Most indices a sender reserves at once (see [`SenderKeys::export_own`]): the first
    /// reservation after a chain starts or is restored is 1, each next one doubles, up to
    /// this, and never beyond the skip window. A restart after a crash skips at most this many
    /// indices minus one, which receivers keep as skipped keys until the grace period.
    pub reserve: u32,
}

impl Default for ChainConfig {
    /// A new chain every 10,000 messages or 7 days; Signal's skip window of 2,000; up to
    /// 1,024 indices reserved at once (one durable write per 1,024 messages in steady state).
    fn default() -> Self {
        Self {
            max_messages: 10_000,
            max_age_ms: 7 * 24 * 60 * 60 * 1000,
            window: ReceivingChain::DEFAULT_WINDOW,
            reserve: 1_024,
        }
    }
}

/// What an envelope sealed by a device carries: the tag byte tells the two apart, inside
/// the AEAD.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// An application message (tag 0, then its bytes).
    Message(Vec<u8>),
    /// A sender's new chain (tag 1, then [`ChainHandoff::to_bytes`]).
    Chain(ChainHandoff),
}

impl Payload {
    /// The tagged bytes, in a buffer zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        match self {
            Self::Message(bytes) => {
                let mut out = Zeroizing::new(Vec::with_capacity(1 + bytes.len()));
                out.push(0);
                out.extend_from_slice(bytes);
                out
            }
            Self::Chain(handoff) => Self::chain_bytes(handoff),
        }
    }

    /// The tagged bytes of [`Payload::Chain`], from a borrowed handoff: a handoff moved into
    /// a payload leaves a copy of its key in the stack slot it was moved from, which nothing
    /// zeroizes.
    pub fn chain_bytes(handoff: &ChainHandoff) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(1 + ChainHandoff::LEN));
        out.push(1);
        out.extend_from_slice(&handoff.to_bytes());
        out
    }

    /// Reads the tagged bytes of an opened envelope (untrusted: the sender's).
    ///
    /// # Errors
    ///
    /// [`BackupError`] for an unknown tag or a handoff of the wrong length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BackupError> {
        match bytes.split_first() {
            Some((0, message)) => Ok(Self::Message(message.to_vec())),
            Some((1, handoff)) => Ok(Self::Chain(ChainHandoff::from_bytes(handoff)?)),
            Some(_) => Err(BackupError::Invalid("unknown payload tag")),
            None => Err(BackupError::WrongLength),
        }
    }
}

/// What [`SenderKeys::seal`] produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSealed {
    /// The envelope handing out a new chain, if this message started one: send it with (or
    /// before) the message.
    pub handoff: Option<Envelope>,
    /// The message.
    pub message: ChainMessage,
    /// The message used the last index reserved: store [`SenderKeys::export_own`] durably
    /// before the message leaves.
    pub reserved: bool,
}

/// This member's own chain and what it needs to know when to start the next.
struct OwnChain {
    chain: SendingChain,
    /// The view the chain was handed to.
    view: ViewDigest,
    /// Local ms when it started.
    started_ms: u64,
    /// The envelope that handed it out (sent again to peers that lack it).
    handoff: Envelope,
    /// The view's members and keys when the chain was last handed out.
    roster: Roster,
    /// Envelopes that handed the chain to members whose keys changed since it started
    /// (sync hands them these instead of `handoff`, which their new keys cannot open).
    rehanded: BTreeMap<MemberId, Envelope>,
    /// Indices below this may be used: a stored copy of the chain starts here.
    reserved: u32,
    /// The next reservation's size.
    next_reservation: u32,
}

/// Who a chain was handed to: each member's key, and a digest of the members and their
/// ranks (what a key rotation leaves unchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Roster {
    ranks: [u8; 32],
    keys: BTreeMap<MemberId, EncryptionKey>,
}

impl Roster {
    fn of(view: &View) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("splitsafe v1 chain roster");
        for (member, _) in view.members() {
            hasher.update(&member.0);
            hasher.update(&[view.rank(member).map_or(0, Rank::tag)]);
        }
        Self {
            ranks: hasher.finalize().into(),
            keys: view
                .members()
                .map(|(member, key)| (*member, *key))
                .collect(),
        }
    }

    /// If `view` has the same members with the same ranks, the members other than `me`
    /// whose keys changed; `None` if anything else changed.
    fn rekeyed(&self, view: &View, me: &MemberId) -> Option<Vec<MemberId>> {
        let now = Self::of(view);
        (now.ranks == self.ranks).then(|| {
            now.keys
                .iter()
                .filter(|(member, key)| *member != me && self.keys.get(member) != Some(key))
                .map(|(member, _)| *member)
                .collect()
        })
    }
}

/// Another member's chain as held here.
struct HeldChain {
    chain: ReceivingChain,
    /// The view its handoff was sealed to.
    view: ViewDigest,
    /// Its handoff's stamp: a sender's later chains have later stamps.
    stamp: Timestamp,
    /// Local ms when a later chain of the same sender arrived.
    superseded_ms: Option<u64>,
}

/// Most chains held per sender: the current one and a few superseded ones still in their
/// grace period (a flood of new chains from one member cannot grow the state without bound).
pub const MAX_CHAINS_PER_SENDER: usize = 4;

/// Sender-key state of one group on one device: this member's own chain and the chains
/// others handed it. Keys are zeroized on drop, never printed.
///
/// A chain serves exactly one view. Before each message, the sender starts a new chain if
/// its view is no longer the one its chain was handed to (a member added, removed or gone,
/// a key rotated, its own included; a rank change too, since the view digest covers ranks),
/// or the chain has sealed [`ChainConfig::max_messages`] messages, or it is older than
/// [`ChainConfig::max_age_ms`]. The new chain's [`ChainHandoff`] travels in an ordinary
/// pairwise envelope sealed to the current view ([`Payload::Chain`]), so exactly that view
/// reads the chain's messages, and a removed member is cut off at the sender's next message
/// after it learns of the removal, as with pairwise envelopes. Messages are judged as
/// envelopes are ([`Keyring::open`]); a refusal changes nothing.
pub struct SenderKeys {
    group: GroupId,
    /// Boxed, as the held chains, so that moving this state (a map of groups growing, a
    /// vector of chains shifting) leaves no copy of a key behind in freed memory.
    own: Option<Box<OwnChain>>,
    #[expect(
        clippy::vec_box,
        reason = "the box keeps each chain's keys at one address, so moves never copy them"
    )]
    held: BTreeMap<MemberId, Vec<Box<HeldChain>>>,
    /// The last chain dropped over [`MAX_CHAINS_PER_SENDER`], in memory only, for the
    /// messages that arrive with its handoff.
    dropped: Option<Box<HeldChain>>,
}

impl fmt::Debug for SenderKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKeys")
            .field("group", &self.group)
            .field("own", &self.own.as_ref().map(|own| own.chain.id()))
            .field("senders", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl SenderKeys {
    /// No chains yet, in `group`.
    pub fn new(group: GroupId) -> Self {
        Self {
            group,
            own: None,
            held: BTreeMap::new(),
            dropped: None,
        }
    }

    /// Seals `plaintext` as the next message of this member's chain, starting a new chain
    /// first (and sealing its handoff to the current view) when the rules of
    /// [`SenderKeys`] say so.
    ///
    /// # Errors
    ///
    /// [`SealError`] if the sender is not in the view or a limit is exceeded; nothing
    /// changes then.
    pub fn seal<R: CryptoRng + ?Sized>(
        &mut self,
        keyring: &mut Keyring,
        replica: &mut Replica,
        now_ms: u64,
        plaintext: &[u8],
        config: ChainConfig,
        rng: &mut R,
    ) -> Result<ChainSealed, SealError> {
        let me = keyring.identity().id();
        if !replica.view().contains(&me) {
            return Err(SealError::NotAMember(me));
        }
        let max = keyring.config.limits.max_payload;
        if plaintext.len() > max {
            return Err(SealError::TooLarge {
                len: plaintext.len(),
                max,
            });
        }
        let view = replica.view().digest();
        let last = config.max_messages.min(u32::MAX - 1);
        let current = self.own.as_ref().filter(|own| {
            own.chain.index() < last && now_ms < own.started_ms.saturating_add(config.max_age_ms)
        });
        // Only keys changed (a member rotated): the chain carries on, handed to the new keys.
        let rekeyed = current
            .filter(|own| own.view != view)
            .and_then(|own| own.roster.rekeyed(replica.view(), &me));
        let fresh = current.is_some_and(|own| own.view == view) || rekeyed.is_some();
        let mut handoff = None;
        if let Some(members) = rekeyed.filter(|members| !members.is_empty()) {
            let own = self.own.as_mut().expect("a current chain");
            let payload = Payload::chain_bytes(&own.chain.handoff());
            let envelope = keyring.seal_to(
                replica,
                now_ms,
                &payload,
                SealOptions::default(),
                rng,
                |member| members.contains(member),
            )?;
            for member in members {
                own.rehanded.insert(member, envelope.clone());
            }
            handoff = Some(envelope);
        }
        if let Some(own) = self.own.as_mut().filter(|own| fresh && own.view != view) {
            own.view = view;
            own.roster = Roster::of(replica.view());
        }
        if !fresh {
            let chain = SendingChain::new(self.group, me, rng);
            let payload = Payload::chain_bytes(&chain.handoff());
            let envelope = keyring.seal(replica, now_ms, &payload, SealOptions::default(), rng)?;
            handoff = Some(envelope.clone());
            self.own = Some(Box::new(OwnChain {
                chain,
                view,
                started_ms: now_ms,
                handoff: envelope,
                roster: Roster::of(replica.view()),
                rehanded: BTreeMap::new(),
                reserved: 0,
                next_reservation: 1,
            }));
        }
        let own = self.own.as_mut().expect("a chain was just ensured");
        let reserved = own.chain.index() >= own.reserved;
        if reserved {
            own.reserved = own.chain.index().saturating_add(own.next_reservation);
            own.next_reservation = own
                .next_reservation
                .saturating_mul(2)
                .min(config.reserve.min(config.window).max(1));
        }
        let stamp = replica.stamp(now_ms);
        let message = own
            .chain
            .seal(stamp, replica.position(&me), plaintext)
            .expect("a chain is replaced before it is exhausted");
        Ok(ChainSealed {
            handoff,
            message,
            reserved,
        })
    }

    /// This member's own chain for storage, at the index it has reserved up to (the key
    /// stepped there: the stored copy reads no message sent before it), with its signing key,
    /// view, start time and handoff envelope; `None` if it has none. A device stores it
    /// durably whenever [`ChainSealed::reserved`] says so, before the message leaves: a copy
    /// restored after a power loss then resumes past every index used, and no message key is
    /// used twice.
    pub fn export_own(&self) -> Option<Zeroizing<Vec<u8>>> {
        let own = self.own.as_ref()?;
        let at = own.chain.handoff_at(own.reserved).to_bytes();
        let signing = own.chain.signing().export();
        let envelope = own.handoff.to_cbor();
        let rehanded: Vec<(MemberId, Vec<u8>)> = own
            .rehanded
            .iter()
            .map(|(member, envelope)| (*member, envelope.to_cbor()))
            .collect();
        let len = at.len()
            + 4
            + signing.len()
            + 32
            + 8
            + 4
            + envelope.len()
            + 32
            + 4
            + own.roster.keys.len() * 64
            + 4
            + rehanded
                .iter()
                .map(|(_, e)| 32 + 4 + e.len())
                .sum::<usize>();
        let mut out = FrameWriter::new(OWN_MAGIC, len);
        out.put(&at);
        out.put(&(signing.len() as u32).to_be_bytes());
        out.put(&signing);
        out.put(&own.view.0);
        out.put(&own.started_ms.to_be_bytes());
        out.put(&(envelope.len() as u32).to_be_bytes());
        out.put(&envelope);
        out.put(&own.roster.ranks);
        out.put(&(own.roster.keys.len() as u32).to_be_bytes());
        for (member, key) in &own.roster.keys {
            out.put(&member.0);
            out.put(&key.0);
        }
        out.put(&(rehanded.len() as u32).to_be_bytes());
        for (member, envelope) in &rehanded {
            out.put(&member.0);
            out.put(&(envelope.len() as u32).to_be_bytes());
            out.put(envelope);
        }
        Some(out.finish())
    }

    /// Puts back this member's own chain from [`export_own`](Self::export_own): it resumes at
    /// the index stored, and reserves again before its next message.
    ///
    /// # Errors
    ///
    /// [`BackupError`] saying what was wrong.
    pub fn restore_own(&mut self, bytes: &[u8], limits: Limits) -> Result<(), BackupError> {
        let mut body = FrameReader::open(OWN_MAGIC, bytes)?;
        let at = ChainHandoff::from_bytes(body.take(ChainHandoff::LEN)?)?;
        let signing = Identity::import(take_sized(&mut body)?)?;
        let view = ViewDigest(*body.secret()?);
        let started_ms = body.u64()?;
        let envelope = |bytes| {
            Envelope::from_cbor(bytes, limits)
                .map_err(|_| BackupError::Invalid("a handoff envelope"))
        };
        let handoff = envelope(take_sized(&mut body)?)?;
        let ranks = *body.secret()?;
        let mut keys = BTreeMap::new();
        for _ in 0..take_u32(&mut body)? {
            let member = MemberId(*body.secret()?);
            keys.insert(member, EncryptionKey(*body.secret()?));
        }
        let mut rehanded = BTreeMap::new();
        for _ in 0..take_u32(&mut body)? {
            let member = MemberId(*body.secret()?);
            rehanded.insert(member, envelope(take_sized(&mut body)?)?);
        }
        body.end()?;
        if at.group != self.group || at.verifying_key != signing.id() {
            return Err(BackupError::Invalid(
                "a chain of another group or signing key",
            ));
        }
        self.own = Some(Box::new(OwnChain {
            chain: SendingChain::restore(&at, signing),
            view,
            started_ms,
            handoff,
            roster: Roster { ranks, keys },
            rehanded,
            reserved: at.index,
            next_reservation: 1,
        }));
        Ok(())
    }

    /// This member's current chain and the envelope that handed it out to `peer`, if the
    /// chain serves `view`, or will at the next message with `peer`'s key unchanged (only
    /// keys changed since: it is handed on to the new keys then). A chain that will be
    /// replaced at the next message is not worth handing out again.
    pub fn own_handoff(&self, view: &View, peer: &MemberId) -> Option<(ChainId, &Envelope)> {
        let own = self.own.as_ref()?;
        let serves = own.view == view.digest()
            || own
                .roster
                .rekeyed(view, &own.chain.sender())
                .is_some_and(|changed| !changed.contains(peer));
        serves.then(|| {
            let envelope = own.rehanded.get(peer).unwrap_or(&own.handoff);
            (own.chain.id(), envelope)
        })
    }

    /// Whether the chain `chain` of `sender` is held here from `index` on (some handoff
    /// taken gave it at or below `index`).
    pub fn holds_index(&self, sender: &MemberId, chain: ChainId, index: u32) -> bool {
        self.held.get(sender).is_some_and(|chains| {
            chains
                .iter()
                .any(|held| held.chain.id() == chain && held.chain.first() <= index)
        })
    }

    /// The latest chain of `sender` held here.
    pub fn holds(&self, sender: &MemberId) -> Option<ChainId> {
        // Kept in stamp order by `install`.
        self.held.get(sender)?.last().map(|held| held.chain.id())
    }

    /// Installs a chain handed over in an envelope from `opened.sender`, sealed to `view`:
    /// returns whether it is new here and kept, or reached indices below the copy held. A
    /// chain already held is never reset (that would give back message keys already used or
    /// erased); a handoff at an earlier index adds only the indices below every one the copy
    /// was given ([`ReceivingChain::extend_back`]).
    ///
    /// # Errors
    ///
    /// [`ChainError::WrongChain`] if the handoff names another group or sender than the
    /// envelope that carried it; nothing changes then.
    pub fn install(
        &mut self,
        opened: &Opened,
        view: ViewDigest,
        handoff: &ChainHandoff,
        config: ChainConfig,
        now_ms: u64,
    ) -> Result<bool, ChainError> {
        if handoff.group != self.group || handoff.sender != opened.sender {
            return Err(ChainError::WrongChain);
        }
        let chains = self.held.entry(opened.sender).or_default();
        if let Some(held) = chains.iter_mut().find(|h| h.chain.id() == handoff.chain) {
            return Ok(held.chain.extend_back(handoff, now_ms));
        }
        chains.push(Box::new(HeldChain {
            chain: ReceivingChain::new(handoff, config.window),
            view,
            stamp: opened.stamp,
            superseded_ms: None,
        }));
        chains.sort_by_key(|held| held.stamp);
        if chains.len() > MAX_CHAINS_PER_SENDER {
            // Not kept, but not lost at once: a message that came with its handoff (delayed
            // behind newer chains) still opens from the last chain dropped.
            self.dropped = Some(chains.remove(0));
        }
        let newest = chains.len() - 1;
        for held in &mut chains[..newest] {
            held.superseded_ms.get_or_insert(now_ms);
        }
        // A handoff older than every chain held, with the cap reached, is dropped at once.
        Ok(chains.iter().any(|held| held.chain.id() == handoff.chain))
    }

    /// Opens a chain message at local time `now_ms`, judging its sender by `replica` and
    /// accepting it by `policy`, as [`Keyring::open`] does envelopes; the message's stamp
    /// is then received by the replica's clock. A message whose chain is not held waits
    /// ([`ChainError::UnknownChain`]) until `grace_ms` past its stamp, and is then given up
    /// ([`ChainError::NeverArrived`]), as a lost message.
    ///
    /// # Errors
    ///
    /// [`OpenError`] saying what was wrong (chain errors as [`OpenError::Chain`]); a
    /// refused message changes nothing.
    pub fn open(
        &mut self,
        replica: &mut Replica,
        policy: SenderPolicy,
        message: &ChainMessage,
        now_ms: u64,
        grace_ms: u64,
    ) -> Result<Opened, OpenError> {
        let header = &message.header;
        let standing = check_claims(replica, (header.group, header.sender), header.position)?;
        let refused = |standing| OpenError::SenderRefused {
            sender: header.sender,
            standing,
        };
        // A chain held only from a later index (handed on to a new key) does not reach
        // this message yet: it waits for an earlier handoff as for an unknown chain.
        let covers = |h: &&mut Box<HeldChain>| {
            h.chain.id() == header.chain
                && h.chain.sender() == header.sender
                && h.chain.first() <= header.index
        };
        let chains = self.held.get_mut(&header.sender);
        let held = chains.and_then(|chains| chains.iter_mut().find(covers));
        let Some(held) = held.or_else(|| self.dropped.as_mut().filter(covers)) else {
            // Unauthenticated, but refusing it refuses only this claim: a message with
            // another claim has another id. Whatever else it may wait for (operations, time),
            // it waits for its chain first, and is checked again once that arrives.
            if let Ok(standing) = standing {
                if !policy.accepts(standing) {
                    return Err(refused(standing));
                }
            }
            let waited_out = now_ms >= header.stamp.millis().saturating_add(grace_ms);
            return Err(OpenError::Chain(if waited_out {
                ChainError::NeverArrived
            } else {
                ChainError::UnknownChain
            }));
        };
        held.chain.verify(message).map_err(OpenError::Chain)?;
        // Authentic: what makes it wait is checked from here on.
        check_stamp(replica, header.stamp, now_ms)?;
        let same_view = held.view == replica.view().digest();
        let standing = adjust(standing?, same_view);
        if !policy.accepts(standing) {
            return Err(refused(standing));
        }
        let plaintext = held
            .chain
            .open_verified(message, now_ms)
            .map_err(OpenError::Chain)?;
        replica
            .observe(header.stamp, now_ms)
            .map_err(OpenError::StampTooFarAhead)?;
        Ok(Opened {
            plaintext,
            sender: header.sender,
            stamp: header.stamp,
            standing,
            same_view,
            signed: true,
            position: header.position,
            view: held.view,
        })
    }

    /// Erases what the grace period is over for: skipped message keys, superseded chains.
    /// Returns the senders whose chains changed.
    pub fn erase_expired(&mut self, now_ms: u64, grace_ms: u64) -> Vec<MemberId> {
        // Only messages that arrive with its handoff use it: none after this.
        self.dropped = None;
        let mut changed = Vec::new();
        for (sender, chains) in &mut self.held {
            let before = chains.len();
            chains.retain(|held| {
                held.superseded_ms
                    .is_none_or(|at| now_ms < at.saturating_add(grace_ms))
            });
            let erased: usize = chains
                .iter_mut()
                .map(|held| held.chain.erase_skipped(now_ms, grace_ms))
                .sum();
            if erased > 0 || chains.len() != before {
                changed.push(*sender);
            }
        }
        self.held.retain(|_, chains| !chains.is_empty());
        changed
    }

    /// When [`erase_expired`](Self::erase_expired) next has something to do.
    pub fn next_erasure(&self, grace_ms: u64) -> Option<u64> {
        self.held
            .values()
            .flatten()
            .flat_map(|held| [held.superseded_ms, held.chain.oldest_skip()])
            .flatten()
            .map(|at| at.saturating_add(grace_ms))
            .min()
    }

    /// The chains of `sender` held here, for the device's own storage; `None` if none.
    pub fn export_held(&self, sender: &MemberId) -> Option<Zeroizing<Vec<u8>>> {
        let chains = self.held.get(sender)?;
        let exports: Vec<_> = chains.iter().map(|held| held.chain.export()).collect();
        let len: usize = exports.iter().map(|e| 4 + e.len() + 32 + 8 + 8).sum();
        let mut out = FrameWriter::new(HELD_MAGIC, 4 + len);
        out.put(&(chains.len() as u32).to_be_bytes());
        for (held, export) in chains.iter().zip(&exports) {
            out.put(&(export.len() as u32).to_be_bytes());
            out.put(export);
            out.put(&held.view.0);
            out.put(&held.stamp.as_raw().to_be_bytes());
            out.put(&held.superseded_ms.unwrap_or(u64::MAX).to_be_bytes());
        }
        Some(out.finish())
    }

    /// Rebuilds the chains held in `group` from [`export_held`](Self::export_held) rows
    /// (this member's own chain is put back by [`restore_own`](Self::restore_own)).
    ///
    /// # Errors
    ///
    /// [`BackupError`] saying what was wrong.
    pub fn import<'a>(
        group: GroupId,
        held: impl IntoIterator<Item = (MemberId, &'a [u8])>,
    ) -> Result<Self, BackupError> {
        let mut keys = Self::new(group);
        for (sender, bytes) in held {
            let mut body = FrameReader::open(HELD_MAGIC, bytes)?;
            let count = u32::from_be_bytes(body.take(4)?.try_into().expect("4 bytes"));
            let mut chains = Vec::new();
            for _ in 0..count.min(MAX_CHAINS_PER_SENDER as u32 + 1) {
                let chain = ReceivingChain::import(take_sized(&mut body)?)?;
                let view = ViewDigest(*body.secret()?);
                let stamp = Timestamp::from_raw(body.u64()?);
                let superseded_ms = Some(body.u64()?).filter(|&at| at != u64::MAX);
                chains.push(Box::new(HeldChain {
                    chain,
                    view,
                    stamp,
                    superseded_ms,
                }));
            }
            body.end()?;
            keys.held.insert(sender, chains);
        }
        Ok(keys)
    }
}

const HELD_MAGIC: &[u8] = b"splitsafe held chains\0";
const OWN_MAGIC: &[u8] = b"splitsafe own chain\0";

/// A big-endian u32 of a frame.
fn take_u32(body: &mut FrameReader<'_>) -> Result<u32, BackupError> {
    Ok(u32::from_be_bytes(
        body.take(4)?.try_into().expect("4 bytes"),
    ))
}

/// A length-prefixed (u32, big-endian) part of a frame.
fn take_sized<'a>(body: &mut FrameReader<'a>) -> Result<&'a [u8], BackupError> {
    let len = take_u32(body)?;
    body.take(len as usize)
}
