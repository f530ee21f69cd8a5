//! Sealing: one envelope for every other member of the sender's view.

use super::content::{aead, zero_nonce, ContentKey};
use super::envelope::{signature_message, Envelope, Header, SLOT_LEN};
use super::error::SealError;
use super::keyring::{Keyring, Peers};
use super::pairwise::HINT_LEN;
use crate::group::Replica;
use crate::keys::MemberId;
use chacha20poly1305::aead::AeadInOut;
use rand_core::CryptoRng;

/// Options of [`Keyring::seal`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealOptions {
    /// Sign the envelope with the sender's identity key: transferable proof of authorship.
    /// Off by default, so that an envelope proves nothing to third parties (deniability).
    pub sign: bool,
}

impl Keyring {
    /// Seals `plaintext` to every other member of `replica`'s view, at local physical time
    /// `now_ms`: the envelope carries a fresh stamp from the replica's clock and the
    /// sender's position (its own chain head), from which readers judge its standing.
    ///
    /// Replicas refuse small-order X25519 keys wherever a bundle appears; as a second line,
    /// a member whose exchange would still come out non-contributory gets no slot, so nothing
    /// is ever wrapped under a key whose exchange is public.
    ///
    /// # Errors
    ///
    /// [`SealError`] if the sender is not in the view or a size limit is exceeded; the
    /// replica's clock is then unchanged.
    pub fn seal<R: CryptoRng + ?Sized>(
        &mut self,
        replica: &mut Replica,
        now_ms: u64,
        plaintext: &[u8],
        options: SealOptions,
        rng: &mut R,
    ) -> Result<Envelope, SealError> {
        self.seal_to(replica, now_ms, plaintext, options, rng, |_| true)
    }

    /// As [`seal`](Self::seal), with slots only for the members of the view that `to`
    /// picks (a sender handing its chain to a member whose key changed, say).
    ///
    /// # Errors
    ///
    /// As for [`seal`](Self::seal).
    pub fn seal_to<R: CryptoRng + ?Sized>(
        &mut self,
        replica: &mut Replica,
        now_ms: u64,
        plaintext: &[u8],
        options: SealOptions,
        rng: &mut R,
        to: impl Fn(&MemberId) -> bool,
    ) -> Result<Envelope, SealError> {
        let me = self.identity.id();
        let view = replica.view();
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
        let stamp = replica.stamp(now_ms);
        let position = replica.position(&me);
        let view = replica.view();
        self.prune(view);

        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let content_key = ContentKey::generate(rng);
        let header = Header {
            version: Header::VERSION,
            group: view.group(),
            sender: me,
            stamp,
            position,
            sender_key: self.current().id,
            view: view.digest(),
            nonce,
            commitment: content_key.commitment(),
            signed: options.sign,
        };
        let header_bytes = header.to_bytes();
        let ciphertext = content_key.seal_payload(&zero_nonce(), &header_bytes, plaintext);
        let bound = header.bind(&ciphertext);

        let mut staged = Peers::new();
        let mut slots: Vec<[u8; SLOT_LEN]> = Vec::with_capacity(recipients);
        let current = self.current();
        for key in view
            .members()
            .filter(|(m, _)| **m != me && to(m))
            .map(|(_, key)| key)
        {
            let Some(pair) = self.pair(header.group, current, key, &mut staged) else {
                continue;
            };
            let slot_key = pair.out.slot_key(&nonce);
            let mut slot = [0u8; SLOT_LEN];
            slot[..HINT_LEN].copy_from_slice(&slot_key.hint);
            slot[HINT_LEN..HINT_LEN + 32].copy_from_slice(content_key.as_bytes());
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
        // Members who published the same key (anyone may publish any public key) get the same
        // slot: one serves them all, and slots stay strictly ascending, as readers require.
        slots.dedup();

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
}
