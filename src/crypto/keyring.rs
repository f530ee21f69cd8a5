//! One member's encryption keys on one device: sealing, opening, rotation and erasure.

use super::envelope::{signature_message, Envelope, Header, Limits, SLOT_LEN};
use super::error::{OpenError, SealError};
use super::pairwise::{self, PairwiseKey, HINT_LEN};
use crate::clock::Timestamp;
use crate::group::{ActionError, Change, GroupId, Replica, SignedOp, View, ViewDigest};
use crate::keys::{
    byte_array, EncryptionKey, Identity, KeyBundle, MemberId, SignatureBytes, SignedMessage,
};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

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
}

impl Default for KeyringConfig {
    /// A grace period of one day; default [`Limits`].
    fn default() -> Self {
        Self {
            grace_ms: 24 * 60 * 60 * 1000,
            limits: Limits::default(),
        }
    }
}

/// Options of [`Keyring::seal`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealOptions {
    /// Sign the envelope with the sender's identity key: transferable proof of authorship.
    /// Off by default, so that an envelope proves nothing to third parties (deniability).
    pub sign: bool,
}

/// An opened envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The payload.
    pub plaintext: Vec<u8>,
    /// The sender.
    pub sender: MemberId,
    /// The sender's stamp.
    pub stamp: Timestamp,
    /// Whether the sender was a member at that stamp, in the reader's replica.
    pub sender_was_member: bool,
    /// Whether the sender sealed to the view the reader has now. If not, the two replicas
    /// have seen different operations: a cue to sync.
    pub same_view: bool,
    /// Whether the envelope carried a valid sender signature.
    pub signed: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext_len", &self.plaintext.len())
            .field("sender", &self.sender)
            .field("stamp", &self.stamp)
            .field("sender_was_member", &self.sender_was_member)
            .field("same_view", &self.same_view)
            .field("signed", &self.signed)
            .finish()
    }
}

/// One of this device's X25519 secrets.
struct OwnKey {
    id: KeyId,
    public: PublicKey,
    secret: StaticSecret,
    /// When a newer key replaced it; `None` for the current key.
    retired_at_ms: Option<u64>,
}

/// The two pairwise keys between one own key and one peer key.
struct Pair {
    /// From the own key to the peer's.
    out: PairwiseKey,
    /// From the peer's key to the own one.
    back: PairwiseKey,
}

/// Pairwise keys of one own key in one group, by peer key. Keyed by the raw public key, so
/// the warm path hashes nothing.
type Peers = BTreeMap<EncryptionKey, Pair>;

/// A member's encryption state on one device: identity, own X25519 secrets (the current one
/// and those retired within the grace period), every peer key seen, and a cache of pairwise
/// keys. Secrets are zeroized when dropped or erased; `Debug` shows no secret.
pub struct Keyring {
    identity: Identity,
    config: KeyringConfig,
    /// Oldest first; the last is current.
    own: Vec<OwnKey>,
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

fn aead(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(*key))
}

/// Every key here is used for one message only, so the AEAD nonce is fixed at zero.
fn zero_nonce() -> Nonce {
    Nonce::default()
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

    fn push_key(&mut self, secret: StaticSecret) {
        let public = PublicKey::from(&secret);
        self.own.push(OwnKey {
            id: KeyId::of(&EncryptionKey(public.to_bytes())),
            public,
            secret,
            retired_at_ms: None,
        });
    }

    fn current(&self) -> &OwnKey {
        self.own.last().expect("a keyring always has a current key")
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
    fn prune(&mut self, view: &View) {
        let group = view.group();
        if self.pruned_for.get(&group) == Some(&view.digest()) {
            return;
        }
        let current: std::collections::BTreeSet<&EncryptionKey> =
            view.members().map(|(_, b)| &b.encryption_key).collect();
        for ((g, _), peers) in self.cache.iter_mut() {
            if *g == group {
                peers.retain(|peer, _| current.contains(peer));
            }
        }
        self.pruned_for.insert(group, view.digest());
    }

    /// The pair of keys between own key `own` and `peer` in `group`: cached, or derived
    /// into `staged`. `None` if the exchange is not contributory.
    fn pair<'a>(
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
            staged.insert(*peer, Pair { out, back });
        }
        staged.get(peer)
    }

    fn commit(&mut self, group: GroupId, own: KeyId, staged: Peers) {
        if !staged.is_empty() {
            self.cache.entry((group, own)).or_default().extend(staged);
        }
    }

    /// Seals `plaintext` to every member of `view` but the sender, stamped `stamp` (from
    /// [`Replica::stamp`]).
    ///
    /// Replicas refuse small-order X25519 keys wherever a bundle appears; as a second line,
    /// a member whose exchange would still come out non-contributory gets no slot, so nothing
    /// is ever wrapped under a key whose exchange is public.
    ///
    /// # Errors
    ///
    /// [`SealError`] if the sender is not in the view or a size limit is exceeded.
    pub fn seal<R: CryptoRng + ?Sized>(
        &mut self,
        view: &View,
        stamp: Timestamp,
        plaintext: &[u8],
        options: SealOptions,
        rng: &mut R,
    ) -> Result<Envelope, SealError> {
        let me = self.identity.id();
        if !view.contains(&me) {
            return Err(SealError::NotAMember(me));
        }
        let limits = self.config.limits;
        if plaintext.len() > limits.max_payload {
            return Err(SealError::TooLarge {
                len: plaintext.len(),
                max: limits.max_payload,
            });
        }
        let recipients = view.len() - 1;
        if recipients > limits.max_recipients {
            return Err(SealError::TooManyRecipients {
                count: recipients,
                max: limits.max_recipients,
            });
        }
        self.prune(view);

        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let mut content_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(content_key.as_mut());
        let header = Header {
            version: Header::VERSION,
            group: view.group(),
            sender: me,
            stamp,
            sender_key: self.current().id,
            view: view.digest(),
            nonce,
            signed: options.sign,
        };
        let header_bytes = header.to_bytes();
        let mut ciphertext = Vec::with_capacity(plaintext.len() + 16);
        ciphertext.extend_from_slice(plaintext);
        let tag = aead(&content_key)
            .encrypt_inout_detached(
                &zero_nonce(),
                &header_bytes,
                ciphertext.as_mut_slice().into(),
            )
            .expect("payload within the AEAD's length limit");
        ciphertext.extend_from_slice(&tag);
        let bound = header.bind(&ciphertext);

        let mut staged = Peers::new();
        let mut slots: Vec<[u8; SLOT_LEN]> = Vec::with_capacity(recipients);
        let current = self.current();
        for bundle in view.members().filter(|(m, _)| **m != me).map(|(_, b)| b) {
            let Some(pair) = self.pair(header.group, current, &bundle.encryption_key, &mut staged)
            else {
                continue;
            };
            let slot_key = pair.out.slot_key(&nonce);
            let mut slot = [0u8; SLOT_LEN];
            slot[..HINT_LEN].copy_from_slice(&slot_key.hint);
            slot[HINT_LEN..HINT_LEN + 32].copy_from_slice(content_key.as_ref());
            let tag = aead(&slot_key.wrap)
                .encrypt_inout_detached(
                    &zero_nonce(),
                    &bound,
                    (&mut slot[HINT_LEN..HINT_LEN + 32]).into(),
                )
                .expect("32 bytes are within the AEAD's length limit");
            slot[HINT_LEN + 32..].copy_from_slice(&tag);
            slots.push(slot);
        }
        let current_id = current.id;
        self.commit(header.group, current_id, staged);
        // Sorted by hint: the recipient finds its slot by binary search, and the order says
        // nothing about who the recipients are.
        slots.sort_unstable();

        let signature = options
            .sign
            .then(|| self.identity.sign(signature_message(&bound)).signature);
        Ok(Envelope {
            header,
            slots: slots.into_flattened(),
            ciphertext,
            signature,
        })
    }

    /// Decodes and opens an envelope from untrusted bytes.
    ///
    /// # Errors
    ///
    /// As for [`open`](Self::open), plus decoding errors.
    pub fn open_bytes(&mut self, bytes: &[u8], replica: &Replica) -> Result<Opened, OpenError> {
        let envelope = Envelope::from_cbor(bytes, self.config.limits)?;
        self.open(&envelope, replica)
    }

    /// Opens an envelope with any of this device's keys still held, judging the sender by the
    /// reader's `replica`.
    ///
    /// # Errors
    ///
    /// [`OpenError`] saying what was wrong; a failed open changes nothing.
    pub fn open(&mut self, envelope: &Envelope, replica: &Replica) -> Result<Opened, OpenError> {
        let header = &envelope.header;
        if header.version != Header::VERSION {
            return Err(OpenError::UnsupportedVersion(header.version));
        }
        if header.group != replica.group() {
            return Err(OpenError::WrongGroup {
                expected: replica.group(),
                found: header.group,
            });
        }
        let view = replica.view();
        let unknown = OpenError::UnknownSenderKey {
            sender: header.sender,
            key: header.sender_key,
        };
        // The sender's current key, or one it published earlier (a message sealed before a
        // rotation the reader has already seen).
        let sender_key = replica
            .published_keys(&header.sender)
            .find(|key| KeyId::of(key) == header.sender_key)
            .copied()
            .ok_or(unknown)?;

        let bound = header.bind(&envelope.ciphertext);
        let signed = match (&envelope.signature, header.signed) {
            (Some(signature), true) => {
                verify_signature(header.sender, &bound, signature)?;
                true
            }
            (None, false) => false,
            _ => return Err(OpenError::Tampered),
        };
        if !envelope.slots.len().is_multiple_of(SLOT_LEN) {
            return Err(OpenError::Tampered);
        }

        let mut found_slot = false;
        let mut content_key = None;
        let mut staged = (KeyId([0; 16]), Peers::new());
        // The current key first, then retired ones, newest first.
        for own in self.own.iter().rev() {
            let mut derived = Peers::new();
            let Some(pair) = self.pair(header.group, own, &sender_key, &mut derived) else {
                continue;
            };
            let slot_key = pair.back.slot_key(&header.nonce);
            for slot in slots_with_hint(envelope, &slot_key.hint) {
                found_slot = true;
                let mut key = Zeroizing::new([0u8; 32]);
                key.copy_from_slice(&slot[HINT_LEN..HINT_LEN + 32]);
                let tag = Tag::from(<[u8; 16]>::try_from(&slot[HINT_LEN + 32..]).expect("16"));
                if aead(&slot_key.wrap)
                    .decrypt_inout_detached(&zero_nonce(), &bound, key.as_mut().into(), &tag)
                    .is_ok()
                {
                    content_key = Some(key);
                    break;
                }
            }
            if content_key.is_some() {
                staged = (own.id, derived);
                break;
            }
        }
        let content_key = match content_key {
            Some(key) => key,
            None if found_slot => return Err(OpenError::Tampered),
            None => return Err(OpenError::NotAddressedToMe),
        };

        let (body, tag) = envelope
            .ciphertext
            .split_at(envelope.ciphertext.len().saturating_sub(16));
        let tag = <[u8; 16]>::try_from(tag).map_err(|_| OpenError::Tampered)?;
        let mut plaintext = body.to_vec();
        aead(&content_key)
            .decrypt_inout_detached(
                &zero_nonce(),
                &header.to_bytes(),
                plaintext.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| OpenError::Tampered)?;

        self.commit(header.group, staged.0, staged.1);
        Ok(Opened {
            plaintext,
            sender: header.sender,
            stamp: header.stamp,
            sender_was_member: replica.was_member(&header.sender, header.stamp),
            same_view: header.view == view.digest(),
            signed,
        })
    }

    /// Replaces the current encryption key: makes a new one, publishes it with a `Rotate`
    /// operation on `replica`, and retires the old one (kept for
    /// [`KeyringConfig::grace_ms`], then erased by [`erase_expired`](Self::erase_expired)).
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
        let secret = StaticSecret::random_from_rng(rng);
        let public = EncryptionKey(PublicKey::from(&secret).to_bytes());
        let created = Timestamp::from_physical(now_ms)
            .max(Timestamp::from_raw(self.created.as_raw().saturating_add(1)));
        let bundle = self.identity.bundle(public, created);
        let result = replica.rotate(&self.identity, bundle, now_ms)?;
        if let Some(current) = self.own.last_mut() {
            current.retired_at_ms = Some(now_ms);
        }
        self.created = created;
        self.push_key(secret);
        Ok(result)
    }

    /// Erases retired secrets whose grace period has passed at `now_ms`, and every cached
    /// pairwise key derived from them; returns how many secrets were erased. Envelopes sealed
    /// to an erased key can no longer be opened by anything this device holds.
    pub fn erase_expired(&mut self, now_ms: u64) -> usize {
        let grace = self.config.grace_ms;
        let (expired, kept): (Vec<OwnKey>, Vec<OwnKey>) =
            std::mem::take(&mut self.own).into_iter().partition(|k| {
                k.retired_at_ms
                    .is_some_and(|at| now_ms >= at.saturating_add(grace))
            });
        self.own = kept;
        for key in &expired {
            self.cache.retain(|(_, own), _| *own != key.id);
        }
        // Dropping `expired` zeroizes the secrets.
        expired.len()
    }
}

/// The slots whose hint equals `hint` (almost always one or none), by binary search over
/// the hint-sorted slots.
fn slots_with_hint<'a>(
    envelope: &'a Envelope,
    hint: &'a [u8; HINT_LEN],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let slots = &envelope.slots;
    let count = slots.len() / SLOT_LEN;
    let at = move |i: usize| &slots[i * SLOT_LEN..(i + 1) * SLOT_LEN];
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if at(middle)[..HINT_LEN] < hint[..] {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    (low..count)
        .map(at)
        .take_while(move |slot| slot[..HINT_LEN] == hint[..])
}

/// Checks the sender's signature with the same strict Ed25519 verification as operations.
fn verify_signature(
    sender: MemberId,
    bound: &[u8; 32],
    signature: &SignatureBytes,
) -> Result<(), OpenError> {
    SignedMessage {
        signer: sender,
        bytes: signature_message(bound),
        signature: *signature,
    }
    .verify()
    .map_err(|_| OpenError::BadSignature)
}
