//! Opening: finding one's slot, checking the key commitment, decrypting, and judging the
//! sender by the reader's replica.

use super::content::{aead, zero_nonce, ContentKey};
use super::envelope::{signature_message, Envelope, SLOT_LEN};
use super::error::OpenError;
use super::keyring::{KeyId, Keyring, Peers};
use super::pairwise::HINT_LEN;
use crate::clock::Timestamp;
use crate::group::{GroupId, PositionError, Replica, Standing, ViewDigest, Watermark};
use crate::keys::{MemberId, SignedMessage};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::Tag;
use std::fmt;
use zeroize::Zeroizing;

/// Which senders' envelopes [`Keyring::open`] accepts, by their [`Standing`] in the reader's
/// replica. Envelopes from senders who were never members are always refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SenderPolicy {
    /// Only [`Standing::Member`]: nothing from anyone outside the reader's view.
    MembersOnly,
    /// [`Standing::Member`] and [`Standing::Removed`]: a removed member's envelopes sealed at
    /// a position its removal had seen (perhaps before it; the caller sees the standing and
    /// may mark them), never those sealed beyond it.
    #[default]
    UpToRemoval,
    /// Every standing, reported in [`Opened::standing`]: for archives and audits that
    /// judge for themselves.
    ReportAll,
}

impl SenderPolicy {
    /// Whether this policy opens envelopes from a sender of `standing`.
    pub fn accepts(self, standing: Standing) -> bool {
        match standing {
            Standing::Member => true,
            Standing::Removed { .. } => self != Self::MembersOnly,
            Standing::Beyond { .. } => self == Self::ReportAll,
        }
    }
}

/// An opened envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The payload.
    pub plaintext: Vec<u8>,
    /// The sender.
    pub sender: MemberId,
    /// The sender's stamp (its claim, within the drift bound).
    pub stamp: Timestamp,
    /// The sender as the reader's replica judges it at opening, from the position the
    /// envelope carries. It can change as the reader learns more operations (a removal
    /// made concurrently, say); judge again with [`Replica::standing`].
    pub standing: Standing,
    /// Whether the sender sealed to the view the reader has now. If not, the two replicas
    /// have seen different operations: a cue to sync.
    pub same_view: bool,
    /// Whether the envelope carried a valid sender signature.
    pub signed: bool,
    /// The sender's position (its claim): what its standing is judged from, then and
    /// whenever the reader learns more ([`judge`]).
    pub position: Watermark,
    /// The view the sender sealed to (its claim; for a chain message, its chain's).
    pub view: ViewDigest,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext_len", &self.plaintext.len())
            .field("sender", &self.sender)
            .field("stamp", &self.stamp)
            .field("standing", &self.standing)
            .field("same_view", &self.same_view)
            .field("signed", &self.signed)
            .finish()
    }
}

impl Keyring {
    /// Decodes and opens an envelope from untrusted bytes.
    ///
    /// # Errors
    ///
    /// As for [`open`](Self::open), plus decoding errors.
    pub fn open_bytes(
        &mut self,
        bytes: &[u8],
        replica: &mut Replica,
        now_ms: u64,
    ) -> Result<Opened, OpenError> {
        let envelope = Envelope::from_cbor(bytes, self.config.limits)?;
        self.open(&envelope, replica, now_ms)
    }

    /// Opens an envelope with any of this device's keys still held, at local physical time
    /// `now_ms`, judging the sender by the reader's `replica`.
    ///
    /// The header's stamp is held to the drift bound of operations: an envelope stamped
    /// further ahead of local time is refused ([`OpenError::StampTooFarAhead`]; the sender
    /// may send it again later). Once opened, the stamp is received by the replica's clock,
    /// so whatever the reader does next (a removal, say) is stamped after the message it
    /// read.
    ///
    /// The sender is judged by the reader's replica from the position the header carries
    /// ([`Replica::standing`]), never from its stamp, and only once the envelope
    /// authenticates: the configured [`SenderPolicy`] then decides whether it opens. An
    /// envelope from a sender who claims to have sealed to the reader's current view,
    /// although that view does not hold the sender, is judged [`Standing::Beyond`] its
    /// removal: an honest sender seals only to views that hold it.
    ///
    /// # Errors
    ///
    /// [`OpenError`] saying what was wrong; a failed open changes nothing.
    pub fn open(
        &mut self,
        envelope: &Envelope,
        replica: &mut Replica,
        now_ms: u64,
    ) -> Result<Opened, OpenError> {
        envelope.check_shape(self.config.limits)?;
        let header = &envelope.header;
        let standing = check_claims(replica, (header.group, header.sender), header.position)?;
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
            .ok_or(unknown)?;

        let bound = header.bind(&envelope.ciphertext);
        let signed = envelope.check_signature_bound(&bound)?;

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
            Some(key) => ContentKey::from_bytes(key),
            None if found_slot => return Err(OpenError::Tampered),
            None => {
                // Decoding refuses slots out of order; an envelope built by hand may have
                // them, and then the search can miss the reader's slot: say so.
                envelope.check_slot_order()?;
                return Err(OpenError::NotAddressedToMe);
            }
        };
        if !content_key.matches(&header.commitment) {
            return Err(OpenError::CommitmentMismatch);
        }

        let plaintext = content_key
            .open_payload(&zero_nonce(), &header.to_bytes(), &envelope.ciphertext)
            .ok_or(OpenError::Tampered)?;

        // Claims that only make the message wait are checked once it authenticates, so
        // that nothing forged waits beside genuine messages.
        check_stamp(replica, header.stamp, now_ms)?;
        let same_view = header.view == view.digest();
        let standing = adjust(standing?, same_view);
        if !self.config.senders.accepts(standing) {
            return Err(OpenError::SenderRefused {
                sender: header.sender,
                standing,
            });
        }
        let opened = Opened {
            plaintext,
            sender: header.sender,
            stamp: header.stamp,
            standing,
            same_view,
            signed,
            position: header.position,
            view: header.view,
        };
        replica
            .observe(header.stamp, now_ms)
            .map_err(OpenError::StampTooFarAhead)?;
        self.commit(header.group, staged.0, staged.1);
        Ok(opened)
    }
}

/// How `replica` judges, now, the sender of a message sealed at `position` to `view`: its
/// standing at the position ([`Replica::standing`]), and [`Standing::Beyond`] its removal if
/// the message claims the reader's current view, which does not hold the sender (an honest
/// sender seals only to views that hold it). The same rule as at opening, so that a message
/// judged again after more operations arrive is judged as if it had arrived after them.
///
/// # Errors
///
/// [`PositionError`] if the position cannot be judged here.
pub fn judge(
    replica: &Replica,
    sender: &MemberId,
    position: Watermark,
    view: ViewDigest,
) -> Result<Standing, PositionError> {
    let standing = replica.standing(sender, position)?;
    Ok(adjust(standing, view == replica.view().digest()))
}

/// A removed sender who claims the reader's current view is beyond its removal.
pub(super) fn adjust(standing: Standing, same_view: bool) -> Standing {
    match standing {
        Standing::Removed { by } if same_view => Standing::Beyond { by },
        standing => standing,
    }
}

/// What a reader checks of a message's claims before any key is used: its group, and the
/// sender's standing at its position, judged here and refused after the message
/// authenticates (except a sender who was never a member, refused at once: it has no key to
/// look for). Shared by envelopes and sender-key messages.
pub(super) fn check_claims(
    replica: &Replica,
    (group, sender): (GroupId, MemberId),
    position: Watermark,
) -> Result<Result<Standing, PositionError>, OpenError> {
    if group != replica.group() {
        return Err(OpenError::WrongGroup {
            expected: replica.group(),
            found: group,
        });
    }
    match replica.standing(&sender, position) {
        Err(never @ PositionError::NeverAMember(_)) => Err(never.into()),
        judged => Ok(judged),
    }
}

/// A message's stamp within the drift bound of local time `now_ms` (checked after the
/// message authenticates: a stamp ahead makes it wait).
pub(super) fn check_stamp(
    replica: &Replica,
    stamp: Timestamp,
    now_ms: u64,
) -> Result<(), OpenError> {
    replica
        .clock()
        .check(stamp, now_ms)
        .map_err(OpenError::StampTooFarAhead)
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

impl Envelope {
    /// Checks the sender's signature, if the envelope carries one, with the same strict
    /// Ed25519 verification as operations: it needs no key of the group (the sender's member
    /// id is its verifying key), so a signed envelope authenticates its claimed sender even
    /// where it cannot be opened yet. Returns whether the envelope is signed.
    ///
    /// # Errors
    ///
    /// [`OpenError::BadSignature`] if the signature is not the sender's over this header and
    /// ciphertext; [`OpenError::Tampered`] if the header's `signed` flag disagrees with the
    /// signature's presence.
    pub fn check_signature(&self) -> Result<bool, OpenError> {
        self.check_signature_bound(&self.header.bind(&self.ciphertext))
    }

    fn check_signature_bound(&self, bound: &[u8; 32]) -> Result<bool, OpenError> {
        match (&self.signature, self.header.signed) {
            (Some(signature), true) => SignedMessage {
                signer: self.header.sender,
                bytes: signature_message(bound),
                signature: *signature,
            }
            .verify()
            .map(|()| true)
            .map_err(|_| OpenError::BadSignature),
            (None, false) => Ok(false),
            _ => Err(OpenError::Tampered),
        }
    }
}
