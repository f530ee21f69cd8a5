//! One member's encryption keys on one device: its secrets, the pairwise-key cache, rotation
//! and erasure. Sealing and opening live in `seal` and `open`.

use super::envelope::Limits;
use super::open::SenderPolicy;
use super::pairwise::{self, PairwiseKey};
use crate::clock::Timestamp;
use crate::group::{ActionError, Change, GroupId, Replica, SignedOp, View, ViewDigest};
use crate::keys::{byte_array, EncryptionKey, Identity, KeyBundle};
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::fmt;
use x25519_dalek::{PublicKey, StaticSecret};

byte_array!(
    /// Names an encryption key: BLAKE3 (derive-key context `"splitsafe v1 key id"`) of the
    /// X25519 public key, first 16 bytes.
    KeyId,
    16
);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &EncryptionKey) -> Self {
        let hash = blake3::derive_key("splitsafe v1 key id", &key.0);
        let mut id = [0; 16];
        id.copy_from_slice(&hash[..16]);
        Self(id)
    }
}

/// Settings of a [`Keyring`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyringConfig {
    /// How long a replaced encryption secret is kept for messages in flight, in milliseconds.
    pub grace_ms: u64,
    /// Size limits for sealing.
    pub limits: Limits,
    /// Which senders' envelopes `open` accepts.
    pub senders: SenderPolicy,
}

impl Default for KeyringConfig {
    /// A grace period of one day; default [`Limits`] and [`SenderPolicy`].
    fn default() -> Self {
        Self {
            grace_ms: 24 * 60 * 60 * 1000,
            limits: Limits::default(),
            senders: SenderPolicy::default(),
        }
    }
}

/// One of this device's X25519 secrets.
pub(super) struct OwnKey {
    pub(super) id: KeyId,
    public: PublicKey,
    secret: StaticSecret,
    /// When a newer key replaced it; `None` for the current key.
    retired_at_ms: Option<u64>,
}

impl OwnKey {
    pub(super) fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    pub(super) fn retired_at(&self) -> Option<u64> {
        self.retired_at_ms
    }
}

/// The two pairwise keys between one own key and one peer key.
pub(super) struct Pair {
    /// From the own key to the peer's.
    pub(super) out: PairwiseKey,
    /// From the peer's key to the own one.
    pub(super) back: PairwiseKey,
}

/// Pairwise keys of one own key in one group, by peer key. Keyed by the raw public key, so
/// the warm path hashes nothing. Boxed, so that the map moving its entries (node splits,
/// merges, the staged map merged into the cache) moves pointers, never key bytes: each key
/// lives at one address until it is zeroized there.
pub(super) type Peers = BTreeMap<EncryptionKey, Box<Pair>>;

/// A member's encryption state on one device: identity, own X25519 secrets (the current one
/// and those retired within the grace period), every peer key seen, and a cache of pairwise
/// keys. Secrets are zeroized when dropped or erased; `Debug` shows no secret.
pub struct Keyring {
    pub(super) identity: Identity,
    pub(super) config: KeyringConfig,
    /// Oldest first; the last is current. Boxed, so that the vector growing or shrinking
    /// moves pointers and each secret is zeroized where it lives.
    #[expect(
        clippy::vec_box,
        reason = "the box keeps each secret at one address, so moves never copy it"
    )]
    pub(super) own: Vec<Box<OwnKey>>,
    created: Timestamp,
    cache: BTreeMap<(GroupId, KeyId), Peers>,
    /// The view digest each group's cache was last pruned against.
    pruned_for: BTreeMap<GroupId, ViewDigest>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("id", &self.identity.id())
            .field("own_keys", &self.own_key_ids())
            .field(
                "cached_pairs",
                &self.cache.values().map(BTreeMap::len).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring for `identity` with a fresh encryption key made at `now_ms`.
    pub fn new<R: CryptoRng + ?Sized>(
        identity: Identity,
        config: KeyringConfig,
        rng: &mut R,
        now_ms: u64,
    ) -> Self {
        let mut keyring = Self {
            identity,
            config,
            own: Vec::new(),
            created: Timestamp::from_physical(now_ms),
            cache: BTreeMap::new(),
            pruned_for: BTreeMap::new(),
        };
        keyring.push_key(StaticSecret::random_from_rng(rng));
        keyring
    }

    /// A keyring from imported parts, without keys yet: [`push_restored`] adds them, oldest
    /// first.
    ///
    /// [`push_restored`]: Self::push_restored
    pub(super) fn restore(identity: Identity, config: KeyringConfig, created: Timestamp) -> Self {
        Self {
            identity,
            config,
            own: Vec::new(),
            created,
            cache: BTreeMap::new(),
            pruned_for: BTreeMap::new(),
        }
    }

    /// Adds an imported key, moved straight into its box (never through a collection whose
    /// freed buffer would keep its bytes).
    pub(super) fn push_restored(&mut self, secret: StaticSecret, retired_at_ms: Option<u64>) {
        self.push_key(secret);
        if let Some(key) = self.own.last_mut() {
            key.retired_at_ms = retired_at_ms;
        }
    }

    /// When the current bundle was made.
    pub(super) fn created(&self) -> Timestamp {
        self.created
    }

    fn push_key(&mut self, secret: StaticSecret) {
        let public = PublicKey::from(&secret);
        self.own.push(Box::new(OwnKey {
            id: KeyId::of(&EncryptionKey(public.to_bytes())),
            public,
            secret,
            retired_at_ms: None,
        }));
    }

    pub(super) fn current(&self) -> &OwnKey {
        self.own.last().expect("a keyring always has a current key")
    }

    /// The settings.
    pub fn config(&self) -> KeyringConfig {
        self.config
    }

    /// Which senders' envelopes [`open`](Self::open) accepts.
    pub fn sender_policy(&self) -> SenderPolicy {
        self.config.senders
    }

    /// Changes which senders' envelopes [`open`](Self::open) accepts from now on.
    pub fn set_sender_policy(&mut self, policy: SenderPolicy) {
        self.config.senders = policy;
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The bundle publishing the current encryption key, signed by the identity.
    pub fn bundle(&self) -> KeyBundle {
        self.identity.bundle(
            EncryptionKey(self.current().public.to_bytes()),
            self.created,
        )
    }

    /// Ids of the encryption keys this device still holds secrets for, oldest first.
    pub fn own_key_ids(&self) -> Vec<KeyId> {
        self.own.iter().map(|k| k.id).collect()
    }

    /// Drops every cached pairwise key (they are derived again when needed), for example to
    /// bound memory; the next message to each peer then pays one X25519 exchange.
    pub fn forget_pairwise_keys(&mut self) {
        self.cache.clear();
        self.pruned_for.clear();
    }

    /// The (from, to) key-id pairs of the cached pairwise keys, both directions.
    pub fn cached_pairs(&self) -> impl Iterator<Item = (KeyId, KeyId)> + '_ {
        self.cache.iter().flat_map(|((_, own), peers)| {
            peers.keys().flat_map(move |peer| {
                let peer = KeyId::of(peer);
                [(*own, peer), (peer, *own)]
            })
        })
    }

    /// Drops cached pairwise keys of peer keys no longer current in `view` (rotated away, or
    /// their member removed). Runs only when the view has changed since the last pruning, so
    /// a message to an unchanged view pays nothing for it.
    pub(super) fn prune(&mut self, view: &View) {
        let group = view.group();
        if self.pruned_for.get(&group) == Some(&view.digest()) {
            return;
        }
        let current: std::collections::BTreeSet<&EncryptionKey> =
            view.members().map(|(_, key)| key).collect();
        for ((g, _), peers) in self.cache.iter_mut() {
            if *g == group {
                peers.retain(|peer, _| current.contains(peer));
            }
        }
        self.pruned_for.insert(group, view.digest());
    }

    /// The pair of keys between own key `own` and `peer` in `group`: cached, or derived
    /// into `staged`. `None` if the exchange is not contributory.
    pub(super) fn pair<'a>(
        &'a self,
        group: GroupId,
        own: &OwnKey,
        peer: &EncryptionKey,
        staged: &'a mut Peers,
    ) -> Option<&'a Pair> {
        if let Some(pair) = self.cache.get(&(group, own.id)).and_then(|p| p.get(peer)) {
            return Some(pair);
        }
        if !staged.contains_key(peer) {
            let peer_id = KeyId::of(peer);
            let (out, back) = pairwise::derive(
                &group,
                (&own.secret, own.id),
                (&PublicKey::from(peer.0), peer_id),
            )?;
            staged.insert(*peer, Box::new(Pair { out, back }));
        }
        staged.get(peer).map(|pair| &**pair)
    }

    pub(super) fn commit(&mut self, group: GroupId, own: KeyId, staged: Peers) {
        if !staged.is_empty() {
            self.cache.entry((group, own)).or_default().extend(staged);
        }
    }

    /// Replaces the current encryption key: makes a new one, publishes it with a `Rotate`
    /// operation on `replica`, and retires the old one (kept for
    /// [`KeyringConfig::grace_ms`], then erased by [`erase_expired`](Self::erase_expired)).
    /// A keyring used in several groups rotates with [`rotate_in_all`](Self::rotate_in_all):
    /// the old key is retired everywhere, so every group must learn the new one.
    ///
    /// # Errors
    ///
    /// [`ActionError`] if the replica refuses the rotation (for example, this member was
    /// removed); the keyring is then unchanged.
    pub fn rotate<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        replica: &mut Replica,
        now_ms: u64,
    ) -> Result<(SignedOp, Vec<Change>), ActionError> {
        self.rotate_in_all(rng, [replica], now_ms)
            .pop()
            .expect("one result per replica")
    }

    /// Rotates to a fresh encryption key and publishes it in every group of `replicas` in
    /// which this member can act: one key for all of them, so that no group is left holding
    /// only a key the device will erase. Groups that refuse the rotation (this member was
    /// removed there) are reported and skipped. If no group takes it (or there is none), the
    /// keyring is unchanged: a key no group has heard of would only make this member's
    /// messages unreadable.
    pub fn rotate_in_all<'r, R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        replicas: impl IntoIterator<Item = &'r mut Replica>,
        now_ms: u64,
    ) -> Vec<Result<(SignedOp, Vec<Change>), ActionError>> {
        let secret = StaticSecret::random_from_rng(rng);
        let public = EncryptionKey(PublicKey::from(&secret).to_bytes());
        let created = Timestamp::from_physical(now_ms)
            .max(Timestamp::from_raw(self.created.as_raw().saturating_add(1)));
        let bundle = self.identity.bundle(public, created);
        let results: Vec<_> = replicas
            .into_iter()
            .map(|replica| replica.rotate(&self.identity, bundle, now_ms))
            .collect();
        if results.iter().any(Result::is_ok) {
            if let Some(current) = self.own.last_mut() {
                current.retired_at_ms = Some(now_ms);
            }
            self.created = created;
            self.push_key(secret);
        }
        results
    }

    /// When the next retired secret's grace period ends, if any is retired.
    pub fn next_erasure(&self) -> Option<u64> {
        self.own
            .iter()
            .filter_map(|k| k.retired_at_ms)
            .map(|at| at.saturating_add(self.config.grace_ms))
            .min()
    }

    /// Erases retired secrets whose grace period has passed at `now_ms`, and every cached
    /// pairwise key derived from them; returns how many secrets were erased. Envelopes sealed
    /// to an erased key can no longer be opened by anything this device holds.
    pub fn erase_expired(&mut self, now_ms: u64) -> usize {
        let grace = self.config.grace_ms;
        let expired: Vec<KeyId> = self
            .own
            .iter()
            .filter(|k| {
                k.retired_at_ms
                    .is_some_and(|at| now_ms >= at.saturating_add(grace))
            })
            .map(|k| k.id)
            .collect();
        // Dropping a boxed secret or pair zeroizes it in place before its memory is freed.
        self.own.retain(|k| !expired.contains(&k.id));
        self.cache.retain(|(_, own), _| !expired.contains(own));
        expired.len()
    }
}
